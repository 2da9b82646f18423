//! Endpoints for machines: RFC 7662 introspection and the revocation feed verifiers follow
//! (see `docs/revocation-feed.md`). Callers present a machine token with scope `verify`,
//! which sees its own tenant (every tenant when it holds `platform` too); tokenless loopback
//! callers only under `AUTH_INTERNAL_LOOPBACK_NO_TOKEN`, never through a proxy.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use auth_verifier::token::{MACHINE_TOKEN_PREFIX, RevocationList};
use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt, stream};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;

use crate::crypto;
use crate::domain::now_ms;
use crate::http::{AppState, bearer};
use crate::service::feed::LOOKBACK;
use crate::service::{Error as ServiceError, Reader};
use crate::store::StoreError;

/// Headers a reverse proxy adds: a request carrying any of them was forwarded, whatever
/// its TCP peer.
const FORWARDING_HEADERS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Whether a tokenless request may use the machine endpoints: only when the loopback
/// exemption is on (`AUTH_INTERNAL_LOOPBACK_NO_TOKEN`), the peer is loopback and not a
/// trusted proxy, and nothing says the request was forwarded.
fn loopback_exempt(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> bool {
    let config = &state.config;
    // An IPv4 peer of a dual-stack listener shows as `::ffff:127.0.0.1`.
    let ip = peer.ip().to_canonical();
    config.internal_loopback_no_token()
        && ip.is_loopback()
        && !config.trusted_proxies.iter().any(|net| net.contains(&ip))
        && !FORWARDING_HEADERS
            .iter()
            .any(|name| headers.contains_key(*name))
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
                tracing::error!(error = ?error, "machine token lookup failed");
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
    let store = state.auth.store();
    // The cursor first: an entry added between the two reads is listed and resumed past; one
    // that commits later with a smaller seq reaches the stream through its look-back.
    let listed = async {
        Ok::<_, StoreError>(RevocationList {
            cursor: store.revocation_cursor().await?,
            entries: store.revocations().await?,
        })
    };
    match listed.await {
        Ok(mut list) => {
            list.cursor = list
                .entries
                .iter()
                .map(|e| e.seq)
                .max()
                .unwrap_or(0)
                .max(list.cursor);
            list.entries.retain(|entry| reader.sees_entry(entry));
            Json(list).into_response()
        }
        Err(error) => {
            tracing::error!(error = %error, "revocation list failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Query parameters of the stream.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// Resume after this seq (same as `Last-Event-ID`).
    after: Option<i64>,
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
    // Subscribe before reading the backlog so nothing falls between the two. The backlog
    // looks back past `after` (seqs are not commit order on PostgreSQL: one smaller than
    // `after` may have committed since), and live entries are passed on whatever their seq:
    // the poller passes each on once, when it first sees it committed. Verifiers apply an
    // entry twice without harm.
    let live = state.auth.feed().subscribe();
    let lookback_from = now_ms() - LOOKBACK.as_millis() as i64;
    let backlog = match state
        .auth
        .store()
        .revocations_since(after, lookback_from)
        .await
    {
        Ok(backlog) => backlog,
        Err(error) => {
            tracing::error!(error = %error, "revocation backlog failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let backlog: Vec<_> = backlog
        .into_iter()
        .filter(|entry| reader.sees_entry(entry))
        .collect();
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
    let events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(backlog.chain(live));
    Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(5))
                .text("ping"),
        )
        .into_response()
}

fn entry_event(entry: &auth_verifier::token::RevocationEntry) -> Event {
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
    match introspection(&state, &reader, &request.token).await {
        Ok(answer) => ([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "introspection failed");
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

/// The RFC 7662 answer for `token`, as `reader` may see it: a token of a tenant the reader
/// does not see is as inactive as a forged one.
async fn introspection(
    state: &AppState,
    reader: &Reader,
    token: &str,
) -> anyhow::Result<serde_json::Value> {
    let inactive = json!({"active": false});
    let store = state.auth.store();
    if token.starts_with(MACHINE_TOKEN_PREFIX) {
        let found = match store.api_token_by_hash(&crypto::token_hash(token)).await {
            Err(StoreError::NotFound) => return Ok(inactive),
            other => other?,
        };
        let tenant = store.tenant_by_id(&found.tenant_id).await?;
        if !reader.sees(&tenant.slug) {
            return Ok(inactive);
        }
        let scope: Vec<&str> = found.scopes.iter().map(|s| s.as_str()).collect();
        return Ok(json!({
            "active": true,
            "token_type": "machine_token",
            "client_id": found.id,
            "tid": tenant.slug,
            "scope": scope.join(" "),
            "iat": found.created_at / 1000,
        }));
    }
    let Ok(claims) = state.auth.verify_access_token(token).await else {
        return Ok(inactive);
    };
    if !reader.sees(&claims.tid) {
        return Ok(inactive);
    }
    let tenant = match store.tenant_by_slug(&claims.tid).await {
        Err(StoreError::NotFound) => return Ok(inactive),
        other => other?,
    };
    let active = match store.session(&tenant.id, &claims.sid).await {
        Ok(session) => session.is_active(now_ms()) && session.user_id == claims.sub,
        Err(StoreError::NotFound) => false,
        Err(error) => return Err(error.into()),
    };
    if !active {
        return Ok(inactive);
    }
    Ok(json!({
        "active": true,
        "token_type": "access_token",
        "sub": claims.sub,
        "tid": claims.tid,
        "sid": claims.sid,
        "roles": claims.roles,
        "iss": claims.iss,
        "aud": claims.aud,
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": claims.jti,
    }))
}
