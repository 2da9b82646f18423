//! Sessions as the signed-in user sees them, with the device they were started from.

use async_graphql::{Context, ID, Object, SimpleObject};

use super::DateTime;
use crate::domain;
use crate::graphql::caller;
use crate::service::Caller;

/// A signed-in device.
pub struct Session {
    /// The record.
    pub session: domain::Session,
    /// Whether it is the caller's own.
    pub current: bool,
}

impl Session {
    /// Wrap a record, marking whether it is the caller's session.
    pub fn for_caller(session: domain::Session, caller: &Caller) -> Self {
        let current =
            matches!(caller, Caller::User { session_id, .. } if *session_id == session.id);
        Self { session, current }
    }
}

/// Where a session was started.
#[derive(SimpleObject)]
pub struct Device {
    /// Operating system.
    pub os: Option<String>,
    /// Browser.
    pub browser: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Coarse location, when known.
    pub location: Option<String>,
}

#[Object]
impl Session {
    /// Session id (the `sid` of its tokens).
    async fn id(&self) -> ID {
        ID(self.session.id.clone())
    }
    /// Whether this is the session of the token making the request.
    async fn current(&self) -> bool {
        self.current
    }
    /// How it was started: `password`, `otp`, `oauth:<provider>`.
    async fn method(&self) -> &str {
        &self.session.method
    }
    /// Device it was started from.
    async fn device(&self) -> Device {
        let device = &self.session.device;
        Device {
            os: device.os.clone(),
            browser: device.browser.clone(),
            ip: device.ip.clone(),
            location: None,
        }
    }
    /// Start.
    async fn created_at(&self) -> DateTime {
        DateTime(self.session.created_at)
    }
    /// Last refresh or authenticated request (minute precision).
    async fn last_seen_at(&self) -> DateTime {
        DateTime(self.session.last_seen_at)
    }
    /// Absolute end; refreshing does not extend it.
    async fn expires_at(&self) -> DateTime {
        DateTime(self.session.expires_at)
    }
    /// When it was revoked, if it was.
    async fn revoked_at(&self) -> Option<DateTime> {
        self.session.revoked_at.map(DateTime)
    }
}

/// Read the caller and wrap sessions for them.
pub(crate) async fn sessions_for(
    ctx: &Context<'_>,
    sessions: Vec<domain::Session>,
) -> async_graphql::Result<Vec<Session>> {
    let caller = caller(ctx).await?;
    Ok(sessions
        .into_iter()
        .map(|s| Session::for_caller(s, caller))
        .collect())
}
