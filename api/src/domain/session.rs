//! Sessions: a signed-in device of a user, and where it was started from.

use super::Millis;

/// Where a session was started from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// The raw User-Agent header.
    pub user_agent: Option<String>,
    /// Operating system parsed from it.
    pub os: Option<String>,
    /// Browser parsed from it.
    pub browser: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
}

/// A signed-in device of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id (`sid`).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: String,
    /// How it was started: `password`, `otp`, `oauth:<provider>`, ….
    pub method: String,
    /// Device it was started from.
    pub device: Device,
    /// Start.
    pub created_at: Millis,
    /// Last token refresh or authenticated request.
    pub last_seen_at: Millis,
    /// Absolute end.
    pub expires_at: Millis,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Millis>,
}

impl Session {
    /// Neither revoked nor past its absolute lifetime.
    pub fn is_active(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}
