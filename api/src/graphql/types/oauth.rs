//! Providers, the OAuth sign-in flow and connections: what their operations take and answer.
//! No type here carries a client secret or a provider token, except [`ConnectionTokens`],
//! which only machine tokens with scope `connections` receive.

use async_graphql::{Enum, InputObject, Object, SimpleObject};

use super::DateTime;

/// What kind of provider: a standard OpenID Connect issuer, a plain OAuth2 server, or a
/// preset that fills endpoints, scopes and quirks.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::domain::ProviderKind")]
pub enum ProviderKind {
    /// Any OpenID Connect issuer (discovery from `/.well-known/openid-configuration`).
    Oidc,
    /// A plain OAuth2 server with explicit endpoints; the user from its userinfo endpoint.
    #[graphql(name = "OAUTH2")]
    Oauth2,
    /// Google.
    Google,
    /// Apple.
    Apple,
    /// GitHub.
    Github,
    /// Microsoft Entra (give the tenant's issuer).
    Microsoft,
    /// Discord.
    Discord,
    /// Twitch.
    Twitch,
    /// TikTok.
    Tiktok,
}

/// `upsertProvider` input.
#[derive(InputObject, Debug, Clone)]
pub struct ProviderInput {
    /// The name other operations call `provider`: lower-case letters, digits, `-`, `_`.
    pub name: String,
    /// Kind.
    pub kind: ProviderKind,
    /// Shown on the sign-in button; the kind's name when unset.
    pub display_name: Option<String>,
    /// OpenID Connect issuer (presets fill it); must be https with a public address.
    pub issuer: Option<String>,
    /// Authorization endpoint (plain OAuth2; overrides discovery).
    pub authorization_url: Option<String>,
    /// Token endpoint (plain OAuth2; overrides discovery).
    pub token_url: Option<String>,
    /// Userinfo endpoint (plain OAuth2; overrides discovery).
    pub userinfo_url: Option<String>,
    /// RFC 7009 revocation endpoint (overrides discovery).
    pub revocation_url: Option<String>,
    /// JWKS URL (overrides discovery).
    pub jwks_url: Option<String>,
    /// OAuth2 client id.
    pub client_id: String,
    /// More client ids accepted as the `aud` of id_tokens (a native app's own).
    pub extra_client_ids: Option<Vec<String>>,
    /// Client secret: write-only, sealed at rest; omitted keeps the stored one.
    pub client_secret: Option<String>,
    /// Apple: the team id (`iss` of the client-secret JWT signed with the key given as
    /// `clientSecret`).
    pub team_id: Option<String>,
    /// Apple: the private key's id (`kid` of the client-secret JWT).
    pub key_id: Option<String>,
    /// Scopes asked for; the kind's defaults when unset.
    pub scopes: Option<Vec<String>>,
    /// Allowed frontend callback URLs, matched exactly.
    pub redirect_urls: Vec<String>,
    /// Whether people may sign in with it (default true).
    pub enabled: Option<bool>,
}

/// A provider's configuration, without its client secret.
pub struct ProviderConfig(pub crate::domain::Provider);

#[Object]
impl ProviderConfig {
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Kind.
    async fn kind(&self) -> ProviderKind {
        self.0.kind.into()
    }
    /// Shown on the sign-in button.
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    /// OpenID Connect issuer.
    async fn issuer(&self) -> Option<&str> {
        self.0.issuer.as_deref()
    }
    /// Authorization endpoint, when configured (not discovered).
    async fn authorization_url(&self) -> Option<&str> {
        self.0.endpoints.authorization.as_deref()
    }
    /// Token endpoint, when configured.
    async fn token_url(&self) -> Option<&str> {
        self.0.endpoints.token.as_deref()
    }
    /// Userinfo endpoint, when configured.
    async fn userinfo_url(&self) -> Option<&str> {
        self.0.endpoints.userinfo.as_deref()
    }
    /// Revocation endpoint, when configured.
    async fn revocation_url(&self) -> Option<&str> {
        self.0.endpoints.revocation.as_deref()
    }
    /// Apple: the team id.
    async fn team_id(&self) -> Option<&str> {
        self.0.team_id.as_deref()
    }
    /// Apple: the private key's id.
    async fn key_id(&self) -> Option<&str> {
        self.0.key_id.as_deref()
    }
    /// Client id.
    async fn client_id(&self) -> &str {
        &self.0.client_id
    }
    /// More accepted id_token audiences.
    async fn extra_client_ids(&self) -> &[String] {
        &self.0.extra_client_ids
    }
    /// Whether a client secret is stored (it is never returned).
    async fn has_client_secret(&self) -> bool {
        self.0.has_client_secret
    }
    /// Scopes.
    async fn scopes(&self) -> &[String] {
        &self.0.scopes
    }
    /// Allowed redirect URLs.
    async fn redirect_urls(&self) -> &[String] {
        &self.0.redirect_urls
    }
    /// Enabled.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// Last changed.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }
}

/// A sign-in button: an enabled provider, nothing secret.
#[derive(SimpleObject, Debug, Clone)]
pub struct SignInProvider {
    /// The name to pass as `provider`.
    pub name: String,
    /// Kind.
    pub kind: ProviderKind,
    /// Button label.
    pub display_name: String,
}

impl From<crate::domain::Provider> for SignInProvider {
    fn from(p: crate::domain::Provider) -> Self {
        Self {
            name: p.name,
            kind: p.kind.into(),
            display_name: p.display_name,
        }
    }
}

/// `startOAuth` input.
#[derive(InputObject, Debug, Clone)]
pub struct StartOAuthInput {
    /// Provider name.
    pub provider: String,
    /// Where the provider sends the person back: one of the provider's `redirectUrls`.
    pub redirect_url: String,
    /// Scopes instead of the provider's (`offline_access` asks for a refresh token).
    pub scopes: Option<Vec<String>>,
}

/// Where to send the person, and the state the provider will hand back.
#[derive(SimpleObject, Debug, Clone)]
pub struct OAuthStart {
    /// The provider's authorization URL, with state, PKCE challenge and nonce.
    pub authorization_url: String,
    /// Keep it (e.g. in session storage) and compare it with the one that comes back.
    pub state: String,
}

/// `completeOAuth` and `linkConnection` input.
#[derive(InputObject, Debug, Clone)]
pub struct CompleteOAuthInput {
    /// Provider name.
    pub provider: String,
    /// The `code` the provider sent back.
    pub code: String,
    /// The `state` the provider sent back.
    pub state: String,
    /// The redirect URL the flow was started with.
    pub redirect_url: String,
    /// Also store the provider's tokens as a connection (completeOAuth; linkConnection always does).
    #[graphql(default)]
    pub upsert_connection: bool,
    /// Apple: the `user` form field posted to the callback with the code (JSON with the
    /// person's name; Apple sends it on the first sign-in only). Ignored for other kinds.
    pub user: Option<String>,
}

/// `signInWithIdToken` input.
#[derive(InputObject, Debug, Clone)]
pub struct IdTokenInput {
    /// Provider name.
    pub provider: String,
    /// The provider's id_token.
    pub id_token: String,
    /// The nonce the app gave the provider (the token may carry it or its SHA-256 hex).
    pub nonce: String,
}

/// A linked provider account, without its tokens.
pub struct Connection(pub crate::domain::Connection);

#[Object]
impl Connection {
    /// Provider name.
    async fn provider(&self) -> &str {
        &self.0.provider
    }
    /// The provider account's id.
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The provider account's email, as the provider gave it.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// Scopes granted.
    async fn scopes(&self) -> &[String] {
        &self.0.scopes
    }
    /// When the stored access token expires.
    async fn expires_at(&self) -> Option<DateTime> {
        self.0.expires_at.map(DateTime)
    }
    /// Whether a refresh token is held.
    async fn has_refresh_token(&self) -> bool {
        self.0.has_refresh_token
    }
    /// Linked.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// Tokens last stored.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }
}

/// A connection's provider tokens, for backends (machine tokens with scope `connections`).
#[derive(SimpleObject, Debug, Clone)]
pub struct ConnectionTokens {
    /// Access token, fresh.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: Option<String>,
    /// Access token expiry.
    pub expires_at: Option<DateTime>,
    /// Scopes.
    pub scopes: Vec<String>,
}
