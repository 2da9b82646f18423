//! Endpoints for machines: RFC 7662 introspection and the revocation feed verifiers follow
//! (see `docs/revocation-feed.md`). Callers present a machine token with scope `verify`,
//! which sees its own tenant (every tenant when it holds `platform` too); tokenless loopback
//! callers only under `AUTH_INTERNAL_LOOPBACK_NO_TOKEN`, never through a proxy.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt, stream};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;

use auth_protocol::{FORWARDING_HEADERS, loopback_exempt as loopback_peer};

use super::{AppState, bearer};
use crate::service::{Error as ServiceError, Reader};

/// Whether a tokenless request may use the machine endpoints: only when the loopback
/// exemption is on (`AUTH_INTERNAL_LOOPBACK_NO_TOKEN`), the peer is loopback and not a
/// trusted proxy, and nothing says the request was forwarded.
fn loopback_exempt(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> bool {
    let config = &state.config;
    let ip = peer.ip().to_canonical();
    let forwarded = FORWARDING_HEADERS
        .iter()
        .any(|name| headers.contains_key(*name));
    config.internal_loopback_no_token()
        && !config.trusted_proxies.iter().any(|net| net.contains(&ip))
        && loopback_peer(ip, forwarded)
}

/// The reader of the machine endpoints: a machine token with scope `verify` (which sees its
/// own tenant, or every tenant when it holds `platform` too), or a tokenless loopback caller
/// under the exemption (every tenant).
async fn allow_machine(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Reader, Response> {
    let refuse = |status: StatusCode, why: &str| {
        let challenge = format!(
            "Bearer realm=\"auth-api\", error=\"invalid_token\", error_description=\"{why}\""
        );
        (
            status,
            [(header::WWW_AUTHENTICATE, challenge)],
            Json(json!({"error": "invalid_token", "error_description": why})),
        )
            .into_response()
    };
    match bearer(headers) {
        Some(token) => match state.auth.verify_reader(token).await {
            Ok(reader) => Ok(reader),
            Err(ServiceError::Forbidden(why)) => Err(refuse(StatusCode::FORBIDDEN, &why)),
            Err(ServiceError::Unauthenticated(why)) => Err(refuse(StatusCode::UNAUTHORIZED, why)),
            Err(error) => {
                crate::telemetry::failure("machine token lookup failed", &error);
                Err(StatusCode::SERVICE_UNAVAILABLE.into_response())
            }
        },
        None if loopback_exempt(state, headers, peer) => Ok(Reader::Everything),
        None => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "a machine token with scope verify is needed",
        )),
    }
}

/// `GET /internal/revocations`: every entry still in force, with the cursor to resume from.
pub async fn revocations(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let reader = match allow_machine(&state, &headers, peer).await {
        Ok(reader) => reader,
        Err(refused) => return refused,
    };
    match state.auth.revocation_list(&reader).await {
        Ok(list) => Json(list).into_response(),
        Err(error) => {
            crate::telemetry::failure("revocation list failed", &error);
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Query parameters of the stream.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// Resume after this seq (same as `Last-Event-ID`).
    after: Option<i64>,
    /// The low-water mark of the list the reader resumes from (its `complete_to`): the
    /// look-back for late commits starts after it. 0 (absent): the whole look-back.
    complete: Option<i64>,
}

/// `GET /internal/revocations/stream`: server-sent events, resumable by `Last-Event-ID`.
pub async fn revocation_stream(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Response {
    let reader = match allow_machine(&state, &headers, peer).await {
        Ok(reader) => reader,
        Err(refused) => return refused,
    };
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.after)
        .unwrap_or(0);
    let complete = query.complete.unwrap_or(0);
    let (backlog, live) = match state
        .auth
        .follow_revocations(&reader, after, complete)
        .await
    {
        Ok(followed) => followed,
        Err(error) => {
            crate::telemetry::failure("revocation backlog failed", &error);
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let sent: HashSet<i64> = backlog.iter().map(|e| e.seq).collect();
    let backlog = stream::iter(backlog.into_iter().map(|entry| Ok(entry_event(&entry))));
    let live = BroadcastStream::new(live).filter_map(move |item| {
        let event = match item {
            Ok(entry) if !sent.contains(&entry.seq) && reader.sees_entry(&entry) => {
                Some(Ok(entry_event(&entry)))
            }
            Ok(_) => None,
            // This subscriber fell behind: tell the verifier to reload the list.
            Err(_) => Some(Ok(Event::default().event("reset").data("{}"))),
        };
        std::future::ready(event)
    });
    // The stream ends when the service shuts down, so that shutdown does not wait for
    // verifiers to hang up (they reconnect, to this replica once it is back or to another).
    let auth = state.auth.clone();
    let stopped = async move { auth.stopped().await };
    let events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(backlog.chain(live).take_until(stopped));
    Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(5))
                .text("ping"),
        )
        .into_response()
}

fn entry_event(entry: &auth_protocol::RevocationEntry) -> Event {
    Event::default()
        .event("revocation")
        .id(entry.seq.to_string())
        .json_data(entry)
        .unwrap_or_else(|_| Event::default().event("reset").data("{}"))
}

/// The token to introspect, from a form or a JSON body.
#[derive(Debug, Deserialize)]
pub struct IntrospectRequest {
    token: String,
}

/// `POST /introspect` (RFC 7662).
pub async fn introspect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let reader = match allow_machine(&state, &headers, peer).await {
        Ok(reader) => reader,
        Err(refused) => return refused,
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let request: Option<IntrospectRequest> = if is_json {
        serde_json::from_slice(&body).ok()
    } else {
        serde_urlencoded_token(&body)
    };
    let Some(request) = request else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "token is required"})),
        )
            .into_response();
    };
    match state.auth.introspect(&reader, &request.token).await {
        Ok(answer) => ([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response(),
        Err(error) => {
            crate::telemetry::failure("introspection failed", &error);
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn serde_urlencoded_token(body: &[u8]) -> Option<IntrospectRequest> {
    form_urlencoded::parse(body)
        .find(|(key, _)| key == "token")
        .map(|(_, token)| IntrospectRequest {
            token: token.into_owned(),
        })
}
