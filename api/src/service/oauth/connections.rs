//! Connections: a user's provider tokens, sealed at rest (AES-256-GCM with the master key,
//! the row id as associated data) and never in any user-facing answer.

use super::{Auth, Result};
use crate::domain::{Connection, Tenant};
use crate::service::{Caller, user_of};

/// The sealing context of a connection's access token.
pub(super) fn access_context(id: &str) -> String {
    format!("connections:{id}:access")
}

/// The sealing context of a connection's refresh token.
pub(super) fn refresh_context(id: &str) -> String {
    format!("connections:{id}:refresh")
}

/// A connection's provider tokens, for backends (`connectionTokens`).
#[derive(Debug, Clone)]
pub struct ProviderTokens {
    /// Access token.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: Option<String>,
    /// Access token expiry (ms).
    pub expires_at: Option<i64>,
    /// Scopes.
    pub scopes: Vec<String>,
}

impl Auth {
    /// The signed-in user's connections, without tokens.
    pub async fn connections(&self, tenant: &Tenant, caller: &Caller) -> Result<Vec<Connection>> {
        let user_id = user_of(caller)?;
        Ok(self.store.connections(&tenant.id, user_id).await?)
    }
}
