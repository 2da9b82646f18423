//! GraphQL subscriptions over WebSocket: `GET /graphql/ws`, the `graphql-transport-ws`
//! protocol. async-graphql executes each operation; the protocol loop is ours, so that an
//! idle `sessionEvents` subscription keeps only its event stream (see `graphql::events`) and
//! for what async-graphql 7.2 leaves out: the token is read from the `connection_init`
//! payload and checked before the connection is acknowledged (close 4401 without a valid
//! one, 4403 for a token that may not subscribe here), a `connection_init` that does not come
//! within [`INIT_TIMEOUT`] closes with 4408, a reused operation id with 4409, at most
//! [`MAX_OPERATIONS`] run at once, the server pings every [`PING_EVERY`], and shutdown closes
//! every connection with 1001.

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;
use std::task::{Context, Poll};

use async_graphql::Data;
use async_graphql::http::ClientMessage;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};

use super::AppState;
use super::graphql::origin;
use crate::domain::Device;
use crate::graphql::events::{Handoff, Shape};
use crate::graphql::{AuthSchema, HashBudget, RequestContext};
use crate::service::{Error as ServiceError, SessionEvent, SessionEvents};

/// How long a client has to send `connection_init` after the upgrade.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server sends a `ping` message.
pub const PING_EVERY: Duration = Duration::from_secs(15);

/// Largest message a client may send (a `subscribe` with its query).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// tungstenite's read buffer per connection (it zero-fills all of it, so all of it is
/// resident): a read takes at most this much, a longer frame grows the buffer as it needs.
/// Messages here are a few hundred bytes.
const READ_BUFFER_BYTES: usize = 256;

/// The sub-protocol spoken.
const PROTOCOL: &str = "graphql-transport-ws";

pub(super) async fn graphql_ws(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Nothing of the request is kept past the upgrade: hyper's header values are slices of
    // its 8–16 KiB connection read buffer, so holding the `HeaderMap` (or any `HeaderValue`)
    // for the connection's life kept that whole buffer alive per idle connection.
    let device = origin(&state.config, peer, &headers);
    let tenant_header = headers
        .get("x-tenant")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    drop(headers);
    // Small buffers: tungstenite's defaults (128 KiB to read, 128 KiB to write) would cost
    // a quarter of a megabyte per idle connection.
    upgrade
        .protocols([PROTOCOL])
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade({
            let start: Start = Box::new((state, device, tenant_header));
            move |socket| serve(start, socket)
        })
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// The first text message, skipping WebSocket pings; `None` when the client went away.
async fn first_message(socket: &mut WebSocket) -> Option<Bytes> {
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Text(text) => return Some(Bytes::copy_from_slice(text.as_bytes())),
            Message::Binary(bytes) => return Some(bytes),
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    None
}

/// A value of the `connection_init` payload, its key matched case-insensitively.
fn payload_value<'a>(payload: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    payload
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
}

/// `connection_init` read and its token checked: the connection's request context, or `None`
/// once the connection is closed.
/// Nothing of the parsed message outlives it.
async fn handshake(
    state: &AppState,
    device: Device,
    tenant_header: Option<String>,
    socket: &mut WebSocket,
) -> Option<RequestContext> {
    if socket
        .protocol()
        .is_none_or(|p| p.as_bytes() != PROTOCOL.as_bytes())
    {
        close(
            socket,
            4406,
            "Subprotocol not acceptable: use graphql-transport-ws",
        )
        .await;
        return None;
    }
    let first = match tokio::time::timeout(INIT_TIMEOUT, first_message(socket)).await {
        Err(_) => {
            metrics::counter!("auth_ws_refused_total", "reason" => "init_timeout").increment(1);
            close(socket, 4408, "Connection initialisation timeout").await;
            return None;
        }
        Ok(None) => return None,
        Ok(Some(first)) => first,
    };
    let Ok(message) = serde_json::from_slice::<serde_json::Value>(&first) else {
        close(socket, 4400, "Invalid message").await;
        return None;
    };
    match message["type"].as_str() {
        Some("connection_init") => {}
        Some("subscribe") => {
            close(socket, 4401, "Unauthorized").await;
            return None;
        }
        _ => {
            close(socket, 4400, "Expected connection_init").await;
            return None;
        }
    }
    let payload = &message["payload"];
    let bearer = payload_value(payload, "authorization").and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    let Some(bearer) = bearer.filter(|b| !b.is_empty()) else {
        metrics::counter!("auth_ws_refused_total", "reason" => "no_token").increment(1);
        close(
            socket,
            4401,
            "Unauthorized: send {\"Authorization\": \"Bearer <token>\"}",
        )
        .await;
        return None;
    };
    let slug = payload_value(payload, "x-tenant").or(tenant_header.as_deref());
    let tenant = match state.auth.tenant(slug).await {
        Ok(tenant) => tenant,
        Err(ServiceError::NotFound(_)) => {
            close(socket, 4403, "Forbidden: unknown tenant").await;
            return None;
        }
        Err(error) => {
            crate::telemetry::failure("tenant lookup failed", &error);
            close(socket, 1011, "internal error").await;
            return None;
        }
    };
    match state.auth.authenticate(&tenant, &bearer).await {
        Ok(caller) if caller.is_user() => {}
        Ok(_) | Err(ServiceError::Forbidden(_)) => {
            metrics::counter!("auth_ws_refused_total", "reason" => "forbidden").increment(1);
            close(socket, 4403, "Forbidden").await;
            return None;
        }
        Err(ServiceError::Unauthenticated(why)) => {
            metrics::counter!("auth_ws_refused_total", "reason" => "unauthenticated").increment(1);
            close(socket, 4401, &format!("Unauthorized: {why}")).await;
            return None;
        }
        Err(error) => {
            crate::telemetry::failure("subscription authentication failed", &error);
            close(socket, 1011, "internal error").await;
            return None;
        }
    }
    let context = RequestContext::new(tenant, Some(bearer), device, HashBudget::default());
    Some(context)
}

/// What a connection starts from, boxed so that the connection's task stays small.
type Start = Box<(AppState, Device, Option<String>)>;

/// A connection's task: the handshake, then the protocol. Everything lives in boxes of
/// its own, so the task (which every idle connection keeps) holds little more than two
/// pointers, and nothing the handshake needed outlives it.
async fn serve(start: Start, socket: WebSocket) {
    let mut socket = Box::new(socket);
    let Some(connection) = Box::pin(open(start, &mut socket)).await else {
        return;
    };
    Box::pin(connection.run(socket)).await;
}

/// The handshake and its `connection_ack`: the established connection, or `None` once the
/// connection is closed.
async fn open(start: Start, socket: &mut WebSocket) -> Option<Connection> {
    let (state, device, tenant_header) = *start;
    let context = handshake(&state, device, tenant_header, socket).await?;
    socket
        .send(Message::Text(r#"{"type":"connection_ack"}"#.into()))
        .await
        .ok()?;
    let mut data = Data::default();
    data.insert(context);
    // Only what the connection's life needs is kept (one `Auth`, the schema).
    let AppState { auth, schema, .. } = state;
    Some(Connection {
        auth,
        schema,
        data: Arc::new(data),
        operations: Vec::new(),
    })
}

/// At most this many operations run at once on one connection (subscriptions are further
/// limited per session and per process by the service).
pub const MAX_OPERATIONS: usize = 16;

/// An established connection: the graphql-transport-ws protocol after `connection_ack`.
struct Connection {
    auth: crate::service::Auth,
    schema: AuthSchema,
    data: Arc<Data>,
    operations: Vec<Operation>,
}

/// One operation of a connection, under the id the client gave it.
enum Operation {
    /// Run by async-graphql: queries, mutations, and a subscription until its resolver has
    /// handed its events over (`graphql::events::Handoff`).
    Executing {
        id: Box<str>,
        stream: BoxStream<'static, async_graphql::Response>,
        handoff: Handoff,
    },
    /// A `sessionEvents` subscription followed by the connection itself: its events and the
    /// shape of its messages, nothing of the query's execution.
    Live {
        id: Box<str>,
        shape: Shape,
        events: SessionEvents,
    },
}

impl Operation {
    fn id(&self) -> &str {
        match self {
            Operation::Executing { id, .. } | Operation::Live { id, .. } => id,
        }
    }
}

/// What one operation produced.
enum Produced {
    Response(async_graphql::Response),
    Event(SessionEvent),
    Done,
}

/// The next thing any operation produced, and its index.
fn poll_operations(operations: &mut [Operation], cx: &mut Context<'_>) -> Poll<(usize, Produced)> {
    for (index, operation) in operations.iter_mut().enumerate() {
        let produced = match operation {
            Operation::Executing { stream, .. } => match stream.poll_next_unpin(cx) {
                Poll::Ready(Some(response)) => Produced::Response(response),
                Poll::Ready(None) => Produced::Done,
                Poll::Pending => continue,
            },
            Operation::Live { events, .. } => match events.poll_next_unpin(cx) {
                Poll::Ready(Some(event)) => Produced::Event(event),
                Poll::Ready(None) => Produced::Done,
                Poll::Pending => continue,
            },
        };
        return Poll::Ready((index, produced));
    }
    Poll::Pending
}

/// A server message.
fn server_message(id: &str, kind: &str, payload: Option<&str>) -> Message {
    let id = serde_json::to_string(id).unwrap_or_default();
    Message::Text(
        match payload {
            Some(payload) => format!(r#"{{"id":{id},"type":"{kind}","payload":{payload}}}"#),
            None => format!(r#"{{"id":{id},"type":"{kind}"}}"#),
        }
        .into(),
    )
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

impl Connection {
    async fn run(mut self, mut socket: Box<WebSocket>) {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let auth = self.auth.clone();
        let stopped = auth.stopped();
        futures_util::pin_mut!(stopped);
        loop {
            let reply = tokio::select! {
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => self.on_client(text.as_bytes()),
                    Some(Ok(Message::Binary(bytes))) => self.on_client(&bytes),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                },
                (index, produced) = std::future::poll_fn(|cx| poll_operations(&mut self.operations, cx)) => {
                    self.on_produced(index, produced)
                }
                _ = ping.tick() => Some(Message::Text(r#"{"type":"ping"}"#.into())),
                () = &mut stopped => Some(close_frame(1001, "server shutting down")),
            };
            let Some(reply) = reply else { continue };
            let closing = matches!(reply, Message::Close(_));
            if socket.send(reply).await.is_err() || closing {
                break;
            }
        }
        let _ = socket.close().await;
    }

    /// A client message: what to answer, if anything.
    fn on_client(&mut self, bytes: &[u8]) -> Option<Message> {
        let Ok(message) = ClientMessage::from_bytes(bytes) else {
            return Some(close_frame(4400, "Invalid message"));
        };
        match message {
            ClientMessage::ConnectionInit { .. } => {
                Some(close_frame(4429, "Too many initialisation requests"))
            }
            ClientMessage::Start { id, payload } => {
                if self.operations.iter().any(|op| op.id() == id) {
                    return Some(close_frame(
                        4409,
                        &format!("Subscriber for {id} already exists"),
                    ));
                }
                if self.operations.len() >= MAX_OPERATIONS {
                    let error = async_graphql::ServerError::new(
                        format!(
                            "at most {MAX_OPERATIONS} operations run at once on one connection"
                        ),
                        None,
                    );
                    let payload = serde_json::to_string(&[error]).unwrap_or_default();
                    return Some(server_message(&id, "error", Some(&payload)));
                }
                let handoff = Handoff::default();
                let stream = self.schema.execute_stream_with_session_data(
                    payload.data(handoff.clone()),
                    self.data.clone(),
                );
                self.operations.push(Operation::Executing {
                    id: id.into(),
                    stream,
                    handoff,
                });
                None
            }
            ClientMessage::Stop { id } => {
                let index = self.operations.iter().position(|op| op.id() == id)?;
                self.operations.swap_remove(index);
                Some(server_message(&id, "complete", None))
            }
            ClientMessage::ConnectionTerminate => Some(close_frame(1000, "terminated")),
            ClientMessage::Ping { .. } => Some(Message::Text(r#"{"type":"pong"}"#.into())),
            ClientMessage::Pong { .. } => None,
        }
    }

    /// What an operation produced: the message to send, if any.
    fn on_produced(&mut self, index: usize, produced: Produced) -> Option<Message> {
        match produced {
            Produced::Response(response) => {
                let operation = &mut self.operations[index];
                if let Operation::Executing { id, handoff, .. } = operation {
                    // A subscription handed its events over: async-graphql's answer is the
                    // sample's, the shape of every event to come; its execution state goes.
                    if let Some(events) = handoff.take()
                        && response.errors.is_empty()
                    {
                        let id = std::mem::take(id);
                        *operation = Operation::Live {
                            id,
                            shape: Shape::of(&response.data),
                            events,
                        };
                        return None;
                    }
                }
                let payload = serde_json::to_string(&response).unwrap_or_default();
                Some(server_message(operation.id(), "next", Some(&payload)))
            }
            Produced::Event(event) => {
                let Operation::Live { id, shape, .. } = &self.operations[index] else {
                    return None;
                };
                let mut data = String::with_capacity(128);
                data.push_str(r#"{"data":"#);
                shape.render(&event, &mut data);
                data.push('}');
                Some(server_message(id, "next", Some(&data)))
            }
            Produced::Done => {
                let operation = self.operations.swap_remove(index);
                Some(server_message(operation.id(), "complete", None))
            }
        }
    }
}
