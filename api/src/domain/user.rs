//! Users and their email addresses.

use super::Millis;

/// Where an address of a user stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailState {
    /// Proven or given at sign-up; the user signs in with it.
    Active,
    /// Added, waiting for its owner to confirm it.
    Pending,
    /// Removed; remembered.
    Previous,
}

impl EmailState {
    /// The name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Previous => "previous",
        }
    }

    /// The state a stored name names; `None` for a name no version of the schema wrote.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Active, Self::Pending, Self::Previous]
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// User id (`sub`).
    pub id: String,
    /// Tenant the user belongs to.
    pub tenant_id: String,
    /// argon2id PHC string; `None` for accounts without a password.
    pub password_hash: Option<String>,
    /// First name.
    pub name_first: Option<String>,
    /// Last name.
    pub name_last: Option<String>,
    /// Display name.
    pub name_display: Option<String>,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// Free-form metadata.
    pub metadata: serde_json::Value,
    /// Roles in the tenant.
    pub roles: Vec<String>,
    /// Those of `roles` that configuration granted (`AUTH_ADMIN_EMAILS`), and takes back
    /// once it no longer lists a verified address of the user.
    pub configured_roles: Vec<String>,
    /// Access tokens issued at or before this second are revoked.
    pub tokens_valid_after: i64,
    /// When an admin disabled the account; a disabled account cannot sign in.
    pub disabled_at: Option<Millis>,
    /// Creation time.
    pub created_at: Millis,
}

/// One address of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEmail {
    /// The normalised address.
    pub email: String,
    /// Where it stands.
    pub state: EmailState,
    /// Whether this is the primary address.
    pub is_primary: bool,
    /// When it was added.
    pub created_at: Millis,
}
