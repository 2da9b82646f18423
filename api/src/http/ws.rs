//! GraphQL subscriptions over WebSocket: `GET /graphql/ws`, the `graphql-transport-ws`
//! protocol (async-graphql's implementation), with what it leaves to us: the token is read
//! from the `connection_init` payload and checked before the connection is acknowledged
//! (close 4401 without a valid one, 4403 for a token that may not subscribe here), a
//! `connection_init` that does not come within [`INIT_TIMEOUT`] closes with 4408, the server
//! pings every [`PING_EVERY`], and shutdown closes every connection with 1001.

use std::net::SocketAddr;
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{WebSocket as GqlWebSocket, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};

use super::AppState;
use super::graphql::origin;
use crate::domain::Device;
use crate::graphql::{HashBudget, RequestContext};
use crate::service::Error as ServiceError;

/// How long a client has to send `connection_init` after the upgrade.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server sends a `ping` message.
pub const PING_EVERY: Duration = Duration::from_secs(15);

/// Largest message a client may send (a `subscribe` with its query).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// tungstenite's read buffer per connection (it zero-fills all of it, so all of it is
/// resident): a read takes at most this much, a longer frame grows the buffer as it needs.
/// Messages here are a few hundred bytes.
const READ_BUFFER_BYTES: usize = 1024;

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
        .on_upgrade(move |socket| serve(state, device, tenant_header, socket))
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

/// `connection_init` read and its token checked: the first message (async-graphql answers it
/// with `connection_ack`) and the request context, or `None` once the connection is closed.
/// Nothing of the parsed message outlives it.
async fn handshake(
    state: &AppState,
    device: Device,
    tenant_header: Option<String>,
    socket: &mut WebSocket,
) -> Option<(Bytes, RequestContext)> {
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
    Some((first, context))
}

async fn serve(
    state: AppState,
    device: Device,
    tenant_header: Option<String>,
    mut socket: WebSocket,
) {
    // The handshake (its tenant lookup and token check are database queries with large
    // futures) runs boxed: a task's size is that of its largest state, and an idle
    // connection's task should be no larger than the subscription loop needs.
    let Some((first, context)) =
        Box::pin(handshake(&state, device, tenant_header, &mut socket)).await
    else {
        return;
    };
    let mut data = Data::default();
    data.insert(context);
    // Only what the connection's life needs is kept (one `Auth`, the schema).
    let AppState { auth, schema, .. } = state;

    let (mut sink, stream) = socket.split();
    let input = futures_util::stream::once(std::future::ready(first)).chain(
        stream
            .take_while(|message| std::future::ready(message.is_ok()))
            .filter_map(|message| {
                std::future::ready(match message {
                    Ok(Message::Text(text)) => Some(Bytes::copy_from_slice(text.as_bytes())),
                    Ok(Message::Binary(bytes)) => Some(bytes),
                    _ => None,
                })
            }),
    );
    let protocol = WebSocketProtocols::GraphQLWS;
    let output = GqlWebSocket::new(schema, input, protocol).connection_data(data);
    futures_util::pin_mut!(output);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let stopped = auth.stopped();
    futures_util::pin_mut!(stopped);
    loop {
        let message = tokio::select! {
            message = output.next() => match message {
                Some(WsMessage::Text(text)) => Message::Text(text.into()),
                Some(WsMessage::Close(code, reason)) => Message::Close(Some(CloseFrame { code, reason: reason.into() })),
                None => break,
            },
            _ = ping.tick() => Message::Text(r#"{"type":"ping"}"#.into()),
            () = &mut stopped => Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() })),
        };
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}
