//! The audit log as admins page through it.

use async_graphql::{Enum, ID, Json, Object, SimpleObject};

use super::{DateTime, PageInfo};
use crate::domain::AuditRecord;
use crate::service::AuditPage;

/// Who did it.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A signed-in user (or a person proving an address or a secret).
    User,
    /// A machine token.
    MachineToken,
    /// The service itself (reuse detection, idle expiry, the operator's command line).
    System,
}

/// The actor of an event.
#[derive(SimpleObject)]
pub struct Actor {
    /// What kind of actor.
    pub kind: ActorKind,
    /// The user's or the token's id; null for the system.
    pub id: Option<ID>,
}

/// One security-relevant event.
pub struct AuditEvent(pub AuditRecord);

#[Object]
impl AuditEvent {
    /// Event id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// When.
    async fn at(&self) -> DateTime {
        DateTime(self.0.at)
    }
    /// What happened: `user.sign_in`, `admin.user_disabled`, … (see the README).
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// Who did it; null when nobody known did (a code asked for an unknown address).
    async fn actor(&self) -> Option<Actor> {
        let actor = self.0.actor.as_deref()?;
        Some(match actor.split_once(':') {
            Some(("user", id)) => Actor {
                kind: ActorKind::User,
                id: Some(ID(id.to_owned())),
            },
            Some(("token", id)) => Actor {
                kind: ActorKind::MachineToken,
                id: Some(ID(id.to_owned())),
            },
            _ => Actor {
                kind: ActorKind::System,
                id: None,
            },
        })
    }
    /// The user concerned.
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.clone().map(ID)
    }
    /// The session concerned.
    async fn session_id(&self) -> Option<ID> {
        self.0.session_id.clone().map(ID)
    }
    /// Client IP.
    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }
    /// Client `User-Agent`.
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
    /// Details (never a secret, token or password).
    async fn detail(&self) -> Json<serde_json::Value> {
        Json(self.0.detail.clone())
    }
}

/// An event and its cursor.
#[derive(SimpleObject)]
pub struct AuditEventEdge {
    /// Opaque cursor.
    pub cursor: String,
    /// The event.
    pub node: AuditEvent,
}

/// A page of the audit log, newest first.
#[derive(SimpleObject)]
pub struct AuditEventConnection {
    /// The events.
    pub edges: Vec<AuditEventEdge>,
    /// Where the page ends.
    pub page_info: PageInfo,
}

impl From<AuditPage> for AuditEventConnection {
    fn from(page: AuditPage) -> Self {
        let end_cursor = page.events.last().map(|(cursor, _)| cursor.clone());
        Self {
            edges: page
                .events
                .into_iter()
                .map(|(cursor, event)| AuditEventEdge {
                    cursor,
                    node: AuditEvent(event),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next,
                end_cursor,
            },
        }
    }
}
