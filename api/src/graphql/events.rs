//! The events area: the `sessionEvents` subscription (over graphql-transport-ws at
//! `GET /graphql/ws`, see `http::ws`).
//!
//! An idle subscription should cost little memory, and async-graphql keeps a whole query's
//! execution state (parsed document, variables, request data, extensions) alive for as long
//! as a subscription stream lives. So over the WebSocket the resolver hands its event stream
//! to the connection ([`Handoff`]) and answers async-graphql with one sample event instead;
//! the connection learns from async-graphql's answer for it the exact shape of every `next`
//! message (aliases, fragments, `@skip`/`@include`, `__typename`: async-graphql's own
//! execution decides, [`Shape`] only remembers where the values go), drops the execution
//! state, and renders each real event into that shape itself.

use std::sync::{Arc, Mutex};

use async_graphql::{Context, Enum, ID, ScalarType, SimpleObject, Subscription, Value};
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

/// The sample event's session id and time: values no real event has, found again in
/// async-graphql's answer for the sample.
const SAMPLE_SESSION_ID: &str = "sample-session-5c0f7a1e-not-a-real-id";
const SAMPLE_AT: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

impl SessionEvent {
    fn sample() -> Self {
        SessionEvent {
            kind: SessionEventKind::Created,
            session_id: ID(SAMPLE_SESSION_ID.into()),
            at: DateTime(SAMPLE_AT),
        }
    }
}

/// Where the resolver leaves a subscription's event stream for the WebSocket connection
/// that asked for it (one per `subscribe`, in the request's data).
#[derive(Clone, Default)]
pub struct Handoff(Arc<Mutex<Option<service::SessionEvents>>>);

impl Handoff {
    /// The event stream the resolver left, if it ran and succeeded.
    pub fn take(&self) -> Option<service::SessionEvents> {
        self.0.lock().ok()?.take()
    }

    fn put(&self, events: service::SessionEvents) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(events);
        }
    }
}

/// The `data` of a subscription's `next` message with holes where an event's values go.
#[derive(Debug)]
pub struct Shape(Box<[Piece]>);

#[derive(Debug, PartialEq)]
enum Piece {
    Text(Box<str>),
    Kind,
    SessionId,
    At,
}

impl Shape {
    /// The shape of `data`, async-graphql's answer for the sample event: every string value
    /// that is the sample's kind, session id or time becomes a hole (keys never do).
    pub fn of(data: &Value) -> Shape {
        fn walk(value: &Value, text: &mut String, pieces: &mut Vec<Piece>) {
            let hole = match value {
                Value::Enum(name) if name.as_str() == "CREATED" => Some(Piece::Kind),
                Value::String(s) if s == "CREATED" => Some(Piece::Kind),
                Value::String(s) if s == SAMPLE_SESSION_ID => Some(Piece::SessionId),
                Value::String(_) if *value == DateTime(SAMPLE_AT).to_value() => Some(Piece::At),
                _ => None,
            };
            if let Some(hole) = hole {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(text).into()));
                }
                pieces.push(hole);
                return;
            }
            match value {
                Value::Object(fields) => {
                    text.push('{');
                    for (i, (key, value)) in fields.iter().enumerate() {
                        if i > 0 {
                            text.push(',');
                        }
                        text.push_str(&json(key.as_str()));
                        text.push(':');
                        walk(value, text, pieces);
                    }
                    text.push('}');
                }
                Value::List(items) => {
                    text.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            text.push(',');
                        }
                        walk(item, text, pieces);
                    }
                    text.push(']');
                }
                other => text.push_str(&serde_json::to_string(other).unwrap_or_default()),
            }
        }
        let mut text = String::new();
        let mut pieces = Vec::new();
        walk(data, &mut text, &mut pieces);
        if !text.is_empty() {
            pieces.push(Piece::Text(text.into()));
        }
        Shape(pieces.into())
    }

    /// Append `event` in this shape (JSON) to `out`.
    pub fn render(&self, event: &service::SessionEvent, out: &mut String) {
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Kind => out.push_str(match event.kind {
                    service::SessionEventKind::Created => "\"CREATED\"",
                    service::SessionEventKind::Revoked => "\"REVOKED\"",
                }),
                Piece::SessionId => out.push_str(&json(&event.session_id)),
                Piece::At => {
                    if let Value::String(at) = DateTime(event.at).to_value() {
                        out.push_str(&json(&at));
                    }
                }
            }
        }
    }
}

fn json(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
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
        use futures_util::future::Either;
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
        Ok(match ctx.data_opt::<Handoff>() {
            // Over our WebSocket: the connection follows the events itself (module docs).
            Some(handoff) => {
                handoff.put(events);
                Either::Left(futures_util::stream::once(std::future::ready(
                    SessionEvent::sample(),
                )))
            }
            None => Either::Right(events.map(SessionEvent::from)),
        })
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{Name, Value};

    use super::*;

    fn object(fields: Vec<(&str, Value)>) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (Name::new(k), v)).collect())
    }

    #[test]
    fn a_shape_fills_values_and_never_keys() {
        let sample = SessionEvent::sample();
        let data = object(vec![(
            "e",
            object(vec![
                // A key that reads like a sample value stays a key.
                ("CREATED", Value::Enum(Name::new("CREATED"))),
                (
                    SAMPLE_SESSION_ID,
                    Value::String(sample.session_id.to_string()),
                ),
                ("at", DateTime(SAMPLE_AT).to_value()),
                ("__typename", Value::String("SessionEvent".into())),
            ]),
        )]);
        let shape = Shape::of(&data);
        let mut out = String::new();
        shape.render(
            &service::SessionEvent {
                kind: service::SessionEventKind::Revoked,
                session_id: "s-\"1\"".into(),
                at: 0,
            },
            &mut out,
        );
        let rendered: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            rendered,
            serde_json::json!({"e": {"CREATED": "REVOKED", SAMPLE_SESSION_ID: "s-\"1\"",
                "at": "1970-01-01T00:00:00Z", "__typename": "SessionEvent"}})
        );
    }
}
