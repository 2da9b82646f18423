//! Machine tokens: created with only the scopes the caller holds, listed without secrets,
//! deleted with a feed entry so verifiers drop them at once.

use auth_protocol::MACHINE_TOKEN_PREFIX;

use super::{Auth, Caller, Error, Result};
use crate::crypto;
use serde_json::json;

use super::tokens::SYSTEM;
use crate::domain::{ApiToken, AuditAction, Device, FieldInvalid, Millis, Scope, Tenant, now_ms};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;

/// A machine token just created: the only time its secret is shown.
#[derive(Debug, Clone)]
pub struct CreatedApiToken {
    /// The stored token.
    pub token: ApiToken,
    /// `mt_…`, shown once.
    pub secret: String,
}

/// `FORBIDDEN` naming the first of `scopes` the caller does not hold.
fn refuse_ungranted(caller: &Caller, scopes: &[Scope], what: &str) -> Result<()> {
    match scopes.iter().find(|scope| !caller.holds(**scope)) {
        None => Ok(()),
        Some(scope) => Err(Error::Forbidden(format!(
            "you can {what} only scopes you hold yourself; you do not hold {}",
            scope.as_str()
        ))),
    }
}

impl Auth {
    /// Create a machine token in the tenant; its secret is returned once. `granted_by` is
    /// the caller, who can grant only scopes it holds ([`Caller::holds`]); `None` is the
    /// operator on the command line, who may grant any.
    pub async fn create_api_token(
        &self,
        tenant: &Tenant,
        granted_by: Option<&Caller>,
        name: &str,
        scopes: &[Scope],
        expires_at: Option<Millis>,
        origin: &Device,
    ) -> Result<CreatedApiToken> {
        let name = name.trim();
        if expires_at.is_some_and(|at| at <= now_ms()) {
            return Err(FieldInvalid::new("expiresAt", "expiresAt must be in the future").into());
        }
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::BadInput("name must have 1 to 100 characters".into()));
        }
        if scopes.is_empty() {
            return Err(Error::BadInput("at least one scope is needed".into()));
        }
        if let Some(caller) = granted_by {
            refuse_ungranted(caller, scopes, "grant")?;
        }
        let mut scopes = scopes.to_vec();
        scopes.sort_by_key(|s| s.as_str());
        scopes.dedup();
        let secret = format!("{MACHINE_TOKEN_PREFIX}{}", crypto::random_token(32));
        let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let audit = AuditEvent {
            action: AuditAction::AdminTokenCreated,
            actor: Some(granted_by.map_or_else(|| SYSTEM.to_owned(), Caller::actor)),
            user_id: None,
            session_id: None,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: json!({ "name": name, "scopes": scope_names, "expiresAt": expires_at }),
        };
        let token = self
            .store
            .create_api_token(
                &tenant.id,
                name,
                &scopes,
                &crypto::token_hash(&secret),
                expires_at,
                Some(audit),
            )
            .await?;
        Ok(CreatedApiToken { token, secret })
    }

    /// The tenant's machine tokens (never their secrets).
    pub async fn api_tokens(&self, tenant: &Tenant) -> Result<Vec<ApiToken>> {
        Ok(self.store.api_tokens(&tenant.id).await?)
    }

    /// Delete a machine token; verifiers drop it at once. The caller must hold every scope of
    /// the token (a tenant admin cannot withdraw the platform's tokens).
    pub async fn delete_api_token(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        id: &str,
        origin: &Device,
    ) -> Result<()> {
        let token = self
            .store
            .api_token(&tenant.id, id)
            .await?
            .ok_or(Error::NotFound("api token"))?;
        refuse_ungranted(caller, &token.scopes, "delete a token with")?;
        // Verifiers cache a machine token's introspection for at most an hour.
        let horizon = now_ms() / 1000 + 3600;
        let audit = AuditEvent {
            action: AuditAction::AdminTokenDeleted,
            actor: Some(caller.actor()),
            user_id: None,
            session_id: None,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: json!({ "tokenId": id, "name": token.name }),
        };
        match self
            .store
            .delete_api_token(tenant, id, horizon, &audit)
            .await
        {
            Err(StoreError::NotFound) => return Err(Error::NotFound("api token")),
            other => other?,
        }
        self.feed.announce();
        Ok(())
    }
}
