//! The events area: the `sessionEvents` subscription (over graphql-transport-ws at
//! `GET /graphql/ws`, see `http::ws`).

use async_graphql::{Context, Enum, ID, SimpleObject, Subscription};
use futures_util::{Stream, StreamExt};

use super::error::{ErrorCode, coded};
use super::types::DateTime;
use super::{GqlResultExt, parts};
use crate::service;

/// What happened to a session.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum SessionEventKind {
    /// It started (a sign-in anywhere).
    Created,
    /// It ended (signed out, revoked, by an admin, a password change …).
    Revoked,
}

/// A session of the signed-in user was created or revoked.
#[derive(SimpleObject, Debug)]
pub struct SessionEvent {
    /// What happened.
    pub kind: SessionEventKind,
    /// The session.
    pub session_id: ID,
    /// When.
    pub at: DateTime,
}

impl From<service::SessionEvent> for SessionEvent {
    fn from(event: service::SessionEvent) -> Self {
        SessionEvent {
            kind: match event.kind {
                service::SessionEventKind::Created => SessionEventKind::Created,
                service::SessionEventKind::Revoked => SessionEventKind::Revoked,
            },
            session_id: ID(event.session_id),
            at: DateTime(event.at),
        }
    }
}

/// Live events about the signed-in user.
#[derive(Default)]
pub struct EventsSubscription;

#[Subscription]
impl EventsSubscription {
    /// The signed-in user's sessions created and revoked, on any replica. When the
    /// subscriber's own session is revoked, its REVOKED event is the last one. The token goes
    /// in the `connection_init` payload as `{"Authorization": "Bearer …"}`.
    async fn session_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = SessionEvent> + use<>> {
        let (auth, request) = parts(ctx)?;
        let Some(bearer) = request.bearer.as_deref() else {
            return Err(coded(
                ErrorCode::Unauthenticated,
                "sign in first: send {\"Authorization\": \"Bearer <token>\"} in connection_init",
            ));
        };
        // Boxed: the checks' futures are large, and the resolver's future is kept inside the
        // subscription's stream for as long as it lives.
        let events = Box::pin(auth.session_events(&request.tenant, bearer))
            .await
            .gql()?;
        Ok(events.map(SessionEvent::from))
    }
}
