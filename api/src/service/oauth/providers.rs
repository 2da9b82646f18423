//! Provider configurations: `upsertProvider`, `deleteProvider`, `providers`, and the
//! enabled ones `tenantInfo` lists. Client secrets are sealed with the master key (the row
//! id as associated data) and never returned.

use super::presets::preset;
use super::{Auth, Error, Result};
use crate::domain::{AuditAction, Endpoints, Provider, ProviderKind, Tenant, new_id, now_ms};
use crate::service::Caller;
use crate::store::StoreError;
use crate::store::audit::AuditEvent;
use crate::store::providers::ProviderWrite;

/// The sealing context of a provider's client secret.
pub(super) fn secret_context(provider_id: &str) -> String {
    format!("oauth_providers:{provider_id}")
}

/// What an admin configures (`ProviderInput`).
#[derive(Debug, Clone, Default)]
pub struct ProviderSpec {
    /// The name every other operation calls `provider`.
    pub name: String,
    /// Kind (presets fill issuer, endpoints and scopes).
    pub kind: Option<ProviderKind>,
    /// Shown on the sign-in button; the kind's name when unset.
    pub display_name: Option<String>,
    /// OpenID Connect issuer.
    pub issuer: Option<String>,
    /// Explicit endpoints (plain OAuth2, or overriding discovery).
    pub endpoints: Endpoints,
    /// Client id.
    pub client_id: String,
    /// More client ids accepted as the `aud` of id_tokens (native apps).
    pub extra_client_ids: Vec<String>,
    /// Client secret; `None` keeps the stored one. Apple: the team's private key (the
    /// `.p8` file's PEM), from which each call's client-secret JWT is signed.
    pub client_secret: Option<String>,
    /// Apple: the team id (`iss` of the client-secret JWT).
    pub team_id: Option<String>,
    /// Apple: the private key's id (`kid`).
    pub key_id: Option<String>,
    /// Scopes; the kind's defaults when unset.
    pub scopes: Option<Vec<String>>,
    /// Allowed frontend callback URLs, matched exactly.
    pub redirect_urls: Vec<String>,
    /// Enabled (default true).
    pub enabled: Option<bool>,
}

fn field(field: &'static str, message: impl Into<String>) -> Error {
    Error::BadField {
        field: field.into(),
        message: message.into(),
    }
}

fn clean_name(name: &str) -> Result<String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(field(
            "input.name",
            "name must be 1-64 lower-case letters, digits, dashes or underscores",
        ))
    }
}

/// A frontend callback URL: absolute http(s), no fragment.
fn check_redirect(raw: &str) -> Result<String> {
    let url = url::Url::parse(raw.trim()).map_err(|_| {
        field(
            "input.redirectUrls",
            format!("{raw:?} is not an absolute URL"),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.fragment().is_some() || !url.has_host() {
        return Err(field(
            "input.redirectUrls",
            format!("{raw:?} must be an http(s) URL without a fragment"),
        ));
    }
    Ok(raw.trim().to_owned())
}

/// Apple's team id and key id (required for `APPLE`, kept from the stored provider when not
/// given again; `None` for every other kind).
fn apple_ids(
    kind: ProviderKind,
    team_id: &Option<String>,
    key_id: &Option<String>,
    existing: Option<&Provider>,
) -> Result<(Option<String>, Option<String>)> {
    if kind != ProviderKind::Apple {
        return Ok((None, None));
    }
    let one = |given: &Option<String>, stored: Option<&Option<String>>, name: &'static str| {
        let value = given
            .as_ref()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| stored.cloned().flatten());
        match value {
            Some(v) if v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(v),
            _ => Err(field(
                name,
                "an Apple provider needs its team id and key id (letters and digits)",
            )),
        }
    };
    Ok((
        Some(one(team_id, existing.map(|e| &e.team_id), "input.teamId")?),
        Some(one(key_id, existing.map(|e| &e.key_id), "input.keyId")?),
    ))
}

impl Auth {
    /// Every provider of the tenant (admin), enabled or not; no secrets.
    pub async fn providers(&self, tenant: &Tenant) -> Result<Vec<Provider>> {
        Ok(self.store.providers(&tenant.id).await?)
    }

    /// The tenant's enabled providers, for sign-in buttons (`tenantInfo`).
    pub async fn enabled_providers(&self, tenant: &Tenant) -> Result<Vec<Provider>> {
        let mut all = self.store.providers(&tenant.id).await?;
        all.retain(|p| p.enabled);
        Ok(all)
    }

    /// Create or replace the provider called `spec.name` (admin). Every provider URL must
    /// be https and resolve to public addresses (unless `AUTH_OAUTH_ALLOW_LOOPBACK`);
    /// refused with `BAD_USER_INPUT` naming the field, before anything is written.
    pub async fn upsert_provider(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        spec: ProviderSpec,
    ) -> Result<Provider> {
        let name = clean_name(&spec.name)?;
        let existing = self.store.provider_by_name(&tenant.id, &name).await?;
        let kind = spec
            .kind
            .or(existing.as_ref().map(|e| e.provider.kind))
            .ok_or_else(|| field("input.kind", "kind is required"))?;
        let defaults = preset(kind);
        let client_id = spec.client_id.trim().to_owned();
        if client_id.is_empty() || client_id.len() > 512 {
            return Err(field(
                "input.clientId",
                "clientId must have 1 to 512 characters",
            ));
        }
        let issuer = spec
            .issuer
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty())
            .or(defaults.issuer.map(str::to_owned));
        if kind.is_oidc() && issuer.is_none() {
            return Err(field(
                "input.issuer",
                "an OpenID Connect provider needs its issuer",
            ));
        }
        let preset_endpoints = defaults.endpoints();
        let pick = |mine: &Option<String>, theirs: &Option<String>| {
            mine.as_ref()
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .or_else(|| theirs.clone())
        };
        let endpoints = Endpoints {
            authorization: pick(
                &spec.endpoints.authorization,
                &preset_endpoints.authorization,
            ),
            token: pick(&spec.endpoints.token, &preset_endpoints.token),
            userinfo: pick(&spec.endpoints.userinfo, &preset_endpoints.userinfo),
            revocation: pick(&spec.endpoints.revocation, &preset_endpoints.revocation),
            jwks: pick(&spec.endpoints.jwks, &preset_endpoints.jwks),
        };
        if !kind.is_oidc() {
            if endpoints.authorization.is_none() {
                return Err(field(
                    "input.authorizationUrl",
                    "an OAuth2 provider needs authorizationUrl",
                ));
            }
            if endpoints.token.is_none() {
                return Err(field("input.tokenUrl", "an OAuth2 provider needs tokenUrl"));
            }
            if endpoints.userinfo.is_none() {
                return Err(field(
                    "input.userinfoUrl",
                    "an OAuth2 provider needs userinfoUrl (who signed in)",
                ));
            }
        }
        // SSRF: every URL we will call, checked now (and again at connect time).
        let urls = [
            ("input.issuer", &issuer),
            ("input.authorizationUrl", &endpoints.authorization),
            ("input.tokenUrl", &endpoints.token),
            ("input.userinfoUrl", &endpoints.userinfo),
            ("input.revocationUrl", &endpoints.revocation),
            ("input.jwksUrl", &endpoints.jwks),
        ];
        for (name, url) in urls {
            // A plain OAuth2 server's issuer is only a namespace: never called.
            if name == "input.issuer" && !kind.is_oidc() {
                continue;
            }
            if let Some(url) = url {
                self.oauth
                    .outbound
                    .check_resolves(url)
                    .await
                    .map_err(|e| field(name, e.to_string()))?;
            }
        }
        if spec.redirect_urls.is_empty() {
            return Err(field(
                "input.redirectUrls",
                "at least one redirect URL is needed",
            ));
        }
        let redirect_urls = spec
            .redirect_urls
            .iter()
            .map(|u| check_redirect(u))
            .collect::<Result<Vec<_>>>()?;
        let scopes = spec
            .scopes
            .unwrap_or_else(|| defaults.scopes.iter().map(|s| (*s).to_owned()).collect());
        if scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(field("input.scopes", "a scope is one word"));
        }
        let display_name = spec
            .display_name
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| kind.display_name().to_owned());
        if display_name.chars().count() > 100 {
            return Err(field(
                "input.displayName",
                "displayName has at most 100 characters",
            ));
        }
        let id = existing
            .as_ref()
            .map(|e| e.provider.id.clone())
            .unwrap_or_else(new_id);
        let secret = spec.client_secret.filter(|s| !s.is_empty());
        if secret.as_ref().is_some_and(|s| s.len() > 4096) {
            return Err(field("input.clientSecret", "clientSecret is too long"));
        }
        let (team_id, key_id) = apple_ids(
            kind,
            &spec.team_id,
            &spec.key_id,
            existing.as_ref().map(|e| &e.provider),
        )?;
        if kind == ProviderKind::Apple
            && let Some(pem) = &secret
            && jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).is_err()
        {
            return Err(field(
                "input.clientSecret",
                "an Apple provider's clientSecret is its private key: the .p8 file's PEM (EC P-256)",
            ));
        }
        if kind == ProviderKind::Apple
            && secret.is_none()
            && existing.as_ref().is_none_or(|e| e.sealed_secret.is_none())
        {
            return Err(field(
                "input.clientSecret",
                "an Apple provider needs its private key (the .p8 file's PEM) as clientSecret",
            ));
        }
        let sealed_secret = secret.map(|s| self.master.seal(&secret_context(&id), s.as_bytes()));
        let now = now_ms();
        let provider = Provider {
            id,
            tenant_id: tenant.id.clone(),
            name: name.clone(),
            kind,
            display_name,
            issuer,
            endpoints,
            client_id,
            extra_client_ids: spec
                .extra_client_ids
                .into_iter()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
            has_client_secret: false,
            team_id,
            key_id,
            scopes,
            redirect_urls,
            enabled: spec.enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        };
        let saved = self
            .store
            .upsert_provider(ProviderWrite {
                provider: &provider,
                sealed_secret,
                audit: AuditEvent {
                    action: AuditAction::ProviderUpserted,
                    actor: Some(caller.actor()),
                    user_id: None,
                    session_id: None,
                    ip: None,
                    user_agent: None,
                    detail: serde_json::json!({ "provider": name, "kind": kind.as_str() }),
                },
            })
            .await;
        if let Some(issuer) = &provider.issuer {
            self.oauth.discovery.invalidate(issuer).await;
        }
        match saved {
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(format!(
                "provider {name} was created meanwhile; try again"
            ))),
            other => Ok(other?),
        }
    }

    /// Delete the provider called `name` with its connections (admin); `NOT_FOUND` when
    /// there is none.
    pub async fn delete_provider(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        name: &str,
    ) -> Result<()> {
        let audit = AuditEvent {
            action: AuditAction::ProviderDeleted,
            actor: Some(caller.actor()),
            user_id: None,
            session_id: None,
            ip: None,
            user_agent: None,
            detail: serde_json::json!({ "provider": name }),
        };
        match self
            .store
            .delete_provider(&tenant.id, name.trim(), audit)
            .await
        {
            Err(StoreError::NotFound) => Err(Error::NotFound("provider")),
            other => Ok(other?),
        }
    }
}
