//! Machine tokens, as stored: never their secret.

use super::{Millis, Scope};

/// A machine token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Token id.
    pub id: String,
    /// Tenant it acts in.
    pub tenant_id: String,
    /// Name given at creation.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Creation time.
    pub created_at: Millis,
    /// Last time it authenticated a request (written at most once a minute).
    pub last_used_at: Option<Millis>,
    /// When it stops working; never when unset.
    pub expires_at: Option<Millis>,
}
