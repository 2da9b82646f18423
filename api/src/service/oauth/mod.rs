//! Sign-in with OAuth2 / OpenID Connect providers, and connections: provider
//! configurations per tenant ([`providers`]), discovery and id_token checks against the
//! provider's JWKS ([`jwks`]), the authorization-code flow with PKCE and native id_token
//! sign-in ([`flow`]), and the connections backends use ([`connections`]). Every call to a
//! provider goes through [`outbound::Outbound`].

mod connections;
mod flow;
mod jwks;
mod outbound;
mod presets;
mod providers;
mod quirks;

pub use connections::ProviderTokens;
pub use flow::{CompleteOAuth, OAuthStart};
pub use providers::ProviderSpec;

use std::sync::Arc;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{EndpointMaybeSet, EndpointNotSet, EndpointSet, StandardRevocableToken};
use serde::{Deserialize, Serialize};

use super::{Auth, Error, Result};
use crate::config::Config;
use crate::domain::{Endpoints, Provider};
use crate::store::providers::StoredProvider;
use outbound::{Outbound, OutboundError};

/// What the OAuth part of the service keeps between calls: the outbound client and the
/// discovery and JWKS caches.
#[derive(Debug, Clone)]
pub(super) struct OAuthRuntime {
    outbound: Outbound,
    discovery: moka::future::Cache<String, Arc<Endpoints>>,
    jwks: Arc<jwks::JwksCache>,
}

impl OAuthRuntime {
    pub(super) fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            outbound: Outbound::new(config.oauth_allow_loopback)?,
            discovery: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
            jwks: Arc::new(jwks::JwksCache::new(std::time::Duration::from_secs(
                config.oauth_jwks_refetch_seconds,
            ))),
        })
    }
}

/// The `id_token` beside the standard token response fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type TokenResponse = oauth2::StandardTokenResponse<IdTokenField, BasicTokenType>;

/// An oauth2 client for one provider: authorization and token endpoints set, revocation
/// where the provider has one.
type ProviderClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointSet,
>;

/// A provider ready to be called: its configuration, opened secret and endpoints.
struct Ready {
    provider: Provider,
    secret: Option<String>,
    endpoints: Endpoints,
}

fn provider_error(provider: &str, error: impl std::fmt::Display) -> Error {
    Error::Provider(format!("the provider {provider} failed: {error}"))
}

impl From<OutboundError> for Error {
    fn from(error: OutboundError) -> Self {
        Error::Provider(format!("provider call failed: {error}"))
    }
}

impl Auth {
    /// The tenant's provider called `name`; `NOT_FOUND` when there is none (another
    /// tenant's providers are not seen) or it is disabled.
    async fn enabled_provider(&self, tenant_id: &str, name: &str) -> Result<StoredProvider> {
        match self.store.provider_by_name(tenant_id, name).await? {
            Some(stored) if stored.provider.enabled => Ok(stored),
            _ => Err(Error::NotFound("provider")),
        }
    }

    /// Open the secret and find the endpoints (discovery for OpenID Connect, cached).
    async fn prepare(&self, stored: StoredProvider) -> Result<Ready> {
        let provider = stored.provider;
        let secret = match &stored.sealed_secret {
            Some(sealed) => Some(
                self.master
                    .open(&providers::secret_context(&provider.id), sealed)
                    .and_then(|plain| String::from_utf8(plain).ok())
                    .ok_or_else(|| anyhow::anyhow!("sealed client secret cannot be opened"))?,
            ),
            None => None,
        };
        // Apple: the stored secret is the team's private key; each use signs a fresh JWT.
        let secret = match (provider.kind, secret) {
            (crate::domain::ProviderKind::Apple, Some(pem)) => {
                let (Some(team), Some(key)) = (&provider.team_id, &provider.key_id) else {
                    return Err(provider_error(&provider.name, "no team id or key id"));
                };
                Some(
                    quirks::apple_client_secret(
                        &pem,
                        team,
                        key,
                        &provider.client_id,
                        crate::domain::now_ms() / 1000,
                    )
                    .map_err(|e| provider_error(&provider.name, format!("client secret: {e}")))?,
                )
            }
            (_, secret) => secret,
        };
        let mut endpoints = provider.endpoints.clone();
        if provider.kind.is_oidc()
            && let Some(issuer) = &provider.issuer
        {
            let found = self.discover(&provider.name, issuer).await?;
            let fill = |mine: &mut Option<String>, theirs: &Option<String>| {
                if mine.is_none() {
                    mine.clone_from(theirs);
                }
            };
            fill(&mut endpoints.authorization, &found.authorization);
            fill(&mut endpoints.token, &found.token);
            fill(&mut endpoints.userinfo, &found.userinfo);
            fill(&mut endpoints.revocation, &found.revocation);
            fill(&mut endpoints.jwks, &found.jwks);
        }
        Ok(Ready {
            provider,
            secret,
            endpoints,
        })
    }

    /// The OpenID configuration of `issuer`, cached for an hour; its `issuer` must equal
    /// ours exactly.
    async fn discover(&self, name: &str, issuer: &str) -> Result<Arc<Endpoints>> {
        if let Some(found) = self.oauth.discovery.get(issuer).await {
            return Ok(found);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let (status, doc) = self.oauth.outbound.get_json(&url, None).await?;
        if !status.is_success() {
            return Err(provider_error(name, format!("discovery answered {status}")));
        }
        let text = |key: &str| doc.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        if text("issuer").as_deref() != Some(issuer) {
            return Err(provider_error(
                name,
                "its discovery document names another issuer",
            ));
        }
        let found = Arc::new(Endpoints {
            authorization: text("authorization_endpoint"),
            token: text("token_endpoint"),
            userinfo: text("userinfo_endpoint"),
            revocation: text("revocation_endpoint"),
            jwks: text("jwks_uri"),
        });
        if found.authorization.is_none() || found.token.is_none() || found.jwks.is_none() {
            return Err(provider_error(
                name,
                "its discovery document lacks an endpoint",
            ));
        }
        self.oauth
            .discovery
            .insert(issuer.to_owned(), found.clone())
            .await;
        Ok(found)
    }
}

impl Ready {
    /// The oauth2 client for this provider and `redirect_url`.
    fn client(&self, redirect_url: Option<&str>) -> Result<ProviderClient> {
        let name = &self.provider.name;
        let missing = |what: &str| provider_error(name, format!("no {what} endpoint"));
        let auth = self
            .endpoints
            .authorization
            .clone()
            .ok_or_else(|| missing("authorization"))?;
        let token = self
            .endpoints
            .token
            .clone()
            .ok_or_else(|| missing("token"))?;
        let bad = |e: url::ParseError| provider_error(name, format!("malformed endpoint: {e}"));
        let mut client =
            oauth2::Client::new(oauth2::ClientId::new(self.provider.client_id.clone()))
                .set_auth_uri(oauth2::AuthUrl::new(auth).map_err(bad)?)
                .set_token_uri(oauth2::TokenUrl::new(token).map_err(bad)?)
                .set_revocation_url_option(
                    self.endpoints
                        .revocation
                        .clone()
                        .map(oauth2::RevocationUrl::new)
                        .transpose()
                        .map_err(bad)?,
                );
        if let Some(secret) = &self.secret {
            client = client.set_client_secret(oauth2::ClientSecret::new(secret.clone()));
        }
        if quirks::credentials_in_body(self.provider.kind) {
            client = client.set_auth_type(oauth2::AuthType::RequestBody);
        }
        if let Some(redirect) = redirect_url {
            client = client.set_redirect_uri(
                oauth2::RedirectUrl::new(redirect.to_owned()).map_err(|_| Error::BadField {
                    field: "input.redirectUrl".into(),
                    message: "redirectUrl is not a URL".into(),
                })?,
            );
        }
        Ok(client)
    }
}
