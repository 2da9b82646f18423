//! Scopes of machine tokens, and the admin role of users.

use serde::{Deserialize, Serialize};

use super::Invalid;

/// A scope of a machine token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The tenant's admin operations.
    Admin,
    /// Read linked providers' tokens of the tenant's users.
    Connections,
    /// Manage tenants.
    Platform,
    /// Follow the revocation feed and introspect tokens (verifiers).
    Verify,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Scope::Admin,
        Scope::Connections,
        Scope::Platform,
        Scope::Verify,
    ];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Connections => "connections",
            Scope::Platform => "platform",
            Scope::Verify => "verify",
        }
    }

    /// Parse a scope name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == raw.trim())
            .ok_or_else(|| {
                Invalid(format!(
                    "unknown scope {raw:?}; known: admin, connections, platform, verify"
                ))
            })
    }
}

/// The role that makes a user an administrator of their tenant.
pub const ADMIN_ROLE: &str = "admin";
