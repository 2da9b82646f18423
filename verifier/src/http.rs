//! The HTTP surface: forward-auth on `/verify` and `/verify/*` (any method, body ignored),
//! RFC 7662 `POST /introspect`, `/healthz`, `/readyz`, `/metrics`. Answers for a client's
//! token are only ever 200, 401 or 403.
//!
//! [`serve`] runs a plain hyper HTTP/1.1 server: its service answers `/verify…` itself (for a
//! cached token synchronously, with no allocation beyond the response's header values; on a
//! miss the token is parsed, hashed and looked up once, see [`Verifier::check_cached`]) and
//! hands every other request to the axum [`router`]. Requests handed to the router carry the
//! TCP peer as an [`axum::extract::ConnectInfo<SocketAddr>`] extension.
//!
//! `POST /introspect` authenticates its caller ([`introspect_caller`]): a machine token with
//! scope `verify`, answering for its own tenant's tokens only unless it holds `platform` too;
//! or, when `VERIFIER_INTROSPECT_LOOPBACK_NO_TOKEN` is on, no token from a loopback peer
//! without forwarding headers ([`loopback_exempt`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use auth_protocol::{FORWARDING_HEADERS, Introspection, TokenType};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::{BoxFuture, Either, Ready, ready};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use metrics::Counter;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::error::Error;
use crate::verify::{Checked, Lookup, Verifier};

/// State shared by the handlers.
pub struct AppState {
    /// The checker.
    pub verifier: Arc<Verifier>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// `realm` of the challenges.
    pub realm: String,
    /// `verifier_requests_total` by outcome.
    pub outcomes: Outcomes,
    /// `VERIFIER_INTROSPECT_LOOPBACK_NO_TOKEN`, resolved: tokenless loopback callers of
    /// `POST /introspect` without forwarding headers are answered.
    pub introspect_loopback_no_token: bool,
}

/// The `verifier_requests_total{outcome=…}` counters, registered once so that a request
/// increments a counter instead of looking one up by name and labels.
pub struct Outcomes {
    allowed: Counter,
    missing: Counter,
    invalid: Counter,
    revoked: Counter,
    stale: Counter,
    forbidden: Counter,
    unavailable: Counter,
    introspect_active: Counter,
    introspect_inactive: Counter,
    introspect_refused: Counter,
}

impl Outcomes {
    /// Registers the counters with the metrics recorder installed now.
    pub fn register() -> Self {
        let c = |o: &'static str| metrics::counter!("verifier_requests_total", "outcome" => o);
        Outcomes {
            allowed: c("allowed"),
            missing: c("missing"),
            invalid: c("invalid"),
            revoked: c("revoked"),
            stale: c("stale"),
            forbidden: c("forbidden"),
            unavailable: c("unavailable"),
            introspect_active: c("introspect_active"),
            introspect_inactive: c("introspect_inactive"),
            introspect_refused: c("introspect_refused"),
        }
    }

    fn refused(&self, e: &Error) -> &Counter {
        match e {
            Error::MissingToken => &self.missing,
            Error::InvalidToken(_) => &self.invalid,
            Error::Revoked => &self.revoked,
            Error::Stale => &self.stale,
            Error::TenantNotAccepted => &self.forbidden,
            Error::Upstream(_) => &self.unavailable,
        }
    }
}

/// The verifier's router for every route but `/verify…`, which [`serve`] answers itself
/// before a request reaches the router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/introspect", post(introspect))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Whether `path` is answered by the forward-auth handler: `/verify`, `/verify/` and
/// `/verify/…`.
fn is_verify(path: &str) -> bool {
    path.strip_prefix("/verify")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

type Answer = Result<Response, Infallible>;

/// Serves `state` on `listener` over HTTP/1.1 until `shutdown` resolves, then stops accepting,
/// lets every connection finish its request in flight, and returns. Accepted sockets get
/// `TCP_NODELAY`. An `accept` error other than a connection's own is logged and retried a
/// second later, as `axum::serve` does.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = router(state.clone());
    let (signal_tx, signal_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                    ) {
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            _ = signal_tx.closed() => break,
        };
        let _ = stream.set_nodelay(true);
        let (state, router) = (state.clone(), router.clone());
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            route(&state, &router, peer, req)
        });
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut conn =
                pin!(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            let mut closed = pin!(signal_tx.closed());
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = &mut closed => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

/// The service of one request: `/verify…` here, synchronously when the cache can answer;
/// anything else through the router, with the connection's `peer` as `ConnectInfo`.
fn route(
    state: &Arc<AppState>,
    router: &Router,
    peer: SocketAddr,
    mut req: hyper::Request<Incoming>,
) -> Either<Ready<Answer>, BoxFuture<'static, Answer>> {
    if !is_verify(req.uri().path()) {
        req.extensions_mut().insert(ConnectInfo(peer));
        return Either::Right(Box::pin(router.clone().oneshot(req.map(Body::new))));
    }
    let (headers, uri, method) = (req.headers(), req.uri(), req.method());
    let Some(token) = bearer(headers) else {
        return Either::Left(ready(Ok(answer(
            state,
            headers,
            uri,
            method,
            Err(Error::MissingToken),
        ))));
    };
    match state.verifier.check_cached(token) {
        Lookup::Answered(checked) => {
            Either::Left(ready(Ok(answer(state, headers, uri, method, checked))))
        }
        Lookup::Miss(key) => {
            // The future owns the request, so it takes its own copy of the token: one small
            // allocation beside a signature check or an introspection call.
            let token: Box<str> = token.into();
            let state = state.clone();
            Either::Right(Box::pin(async move {
                let checked = state.verifier.check_uncached(&token, key).await;
                let (headers, uri, method) = (req.headers(), req.uri(), req.method());
                Ok(answer(&state, headers, uri, method, checked))
            }))
        }
    }
}

/// The bearer token of `Authorization`, if the scheme is `Bearer` (any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if value.eq_ignore_ascii_case("bearer") {
        return Some("");
    }
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The original request as the proxy described it: method and URI.
fn original<'a>(headers: &'a HeaderMap, uri: &'a Uri, method: &'a Method) -> (&'a str, &'a str) {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let m = h("x-forwarded-method")
        .or_else(|| h("x-original-method"))
        .unwrap_or(method.as_str());
    let u = h("x-forwarded-uri")
        .or_else(|| h("x-original-uri"))
        .or_else(|| h("x-original-url"))
        .or_else(|| uri.path().strip_prefix("/verify").filter(|p| !p.is_empty()))
        .unwrap_or("/");
    (m, u)
}

fn challenge(realm: &str, err: &Error) -> Response {
    let (status, value) = match err {
        Error::MissingToken => (
            StatusCode::UNAUTHORIZED,
            format!("Bearer realm=\"{realm}\""),
        ),
        Error::TenantNotAccepted => (
            StatusCode::FORBIDDEN,
            format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\"",
                err.description()
            ),
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                err.description()
            ),
        ),
    };
    let body = match err {
        Error::MissingToken => json!({"error": "unauthorized"}),
        Error::TenantNotAccepted => {
            json!({"error": "insufficient_scope", "error_description": err.description()})
        }
        _ => json!({"error": "invalid_token", "error_description": err.description()}),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn hv(s: &str) -> HeaderValue {
    // Identity parts are checked to be visible ASCII before they are cached.
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

const X_AUTH_USER: HeaderName = HeaderName::from_static("x-auth-user");
const X_AUTH_TENANT: HeaderName = HeaderName::from_static("x-auth-tenant");
const X_AUTH_SESSION: HeaderName = HeaderName::from_static("x-auth-session");
const X_AUTH_ROLES: HeaderName = HeaderName::from_static("x-auth-roles");
const X_AUTH_SCOPE: HeaderName = HeaderName::from_static("x-auth-scope");
const X_AUTH_TOKEN_TYPE: HeaderName = HeaderName::from_static("x-auth-token-type");
const ACCESS_TOKEN: HeaderValue = HeaderValue::from_static(TokenType::AccessToken.as_str());
const MACHINE_TOKEN: HeaderValue = HeaderValue::from_static(TokenType::MachineToken.as_str());

/// The forward-auth answer for the outcome of a check: 200 with the identity in `X-Auth-*`
/// headers, or the challenge. Counts the outcome; logs it at debug level.
pub fn answer(
    st: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    method: &Method,
    checked: Result<Checked, Error>,
) -> Response {
    let outcome = match &checked {
        Ok(_) => "allowed",
        Err(e) => e.outcome(),
    };
    if tracing::enabled!(tracing::Level::DEBUG) {
        let (m, u) = original(headers, uri, method);
        match &checked {
            Ok(_) => tracing::debug!(method = m, uri = u, outcome, "verify"),
            Err(e) => {
                if let Error::Upstream(why) = e {
                    tracing::debug!(error = %why, "token could not be checked");
                }
                tracing::debug!(
                    method = m,
                    uri = u,
                    outcome,
                    reason = e.description(),
                    "verify"
                )
            }
        }
    }
    match checked {
        Ok(checked) => {
            st.outcomes.allowed.increment(1);
            let mut resp = Response::new(Body::empty());
            let h = resp.headers_mut();
            match checked {
                Checked::Access(id) => {
                    h.insert(X_AUTH_USER, hv(id.sub()));
                    h.insert(X_AUTH_TENANT, hv(id.tid()));
                    h.insert(X_AUTH_SESSION, hv(id.sid()));
                    h.insert(X_AUTH_ROLES, hv(id.roles()));
                    h.insert(X_AUTH_TOKEN_TYPE, ACCESS_TOKEN);
                }
                Checked::Machine(a) => {
                    h.insert(X_AUTH_USER, hv(a.client_id.as_deref().unwrap_or("")));
                    h.insert(X_AUTH_TENANT, hv(a.tid.as_deref().unwrap_or("default")));
                    h.insert(X_AUTH_SESSION, HeaderValue::from_static(""));
                    h.insert(X_AUTH_ROLES, HeaderValue::from_static(""));
                    h.insert(X_AUTH_SCOPE, hv(a.scope.as_deref().unwrap_or("")));
                    h.insert(X_AUTH_TOKEN_TYPE, MACHINE_TOKEN);
                }
            }
            resp
        }
        Err(e) => {
            st.outcomes.refused(&e).increment(1);
            challenge(&st.realm, &e)
        }
    }
}

/// The `token` of an RFC 7662 request body, form-encoded or JSON.
fn introspection_token(headers: &HeaderMap, body: &Bytes) -> Option<String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/json") {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        return v.get("token")?.as_str().map(str::to_owned);
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Whether a tokenless `POST /introspect` is answered: the exemption is `enabled`, the TCP
/// `peer` is known and a loopback address (IPv4-mapped IPv6 included), and no
/// [`FORWARDING_HEADERS`] header is present (a same-host reverse proxy forwarding outside
/// traffic must not pass the exemption on). An unknown peer (a router used in process without
/// `ConnectInfo`) is not exempt.
pub fn loopback_exempt(enabled: bool, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    let forwarded = FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
    enabled && peer.is_some_and(|p| auth_protocol::loopback_exempt(p.ip(), forwarded))
}

/// Who may see what through `POST /introspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A tokenless loopback caller ([`loopback_exempt`]): every tenant.
    Loopback,
    /// A machine token with scope `verify` and `platform`: every tenant.
    Platform,
    /// A machine token with scope `verify` of this tenant: its tenant's tokens only.
    Tenant(String),
}

impl Caller {
    /// Whether this caller may learn about a token of tenant `tid`.
    pub fn sees(&self, tid: &str) -> bool {
        match self {
            Caller::Loopback | Caller::Platform => true,
            Caller::Tenant(own) => own == tid,
        }
    }
}

/// Authenticates the caller of `POST /introspect`: its bearer token is checked as any token
/// ([`Verifier::check`]: a machine token through the API's introspection, cached) and must be
/// a machine token with scope `verify`; without a token, only [`loopback_exempt`] callers pass.
/// Refusals: 401 `Bearer realm=…` without a token, 401 `error="invalid_token"` with a bad one,
/// 403 `error="insufficient_scope"` for a valid token without scope `verify` (or of a tenant this
/// verifier does not accept).
pub async fn introspect_caller(
    st: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Caller, Response> {
    let Some(token) = bearer(headers) else {
        if loopback_exempt(st.introspect_loopback_no_token, peer, headers) {
            return Ok(Caller::Loopback);
        }
        return Err(challenge(&st.realm, &Error::MissingToken));
    };
    let machine = match st.verifier.check(token).await {
        Ok(Checked::Machine(a)) => a,
        Ok(Checked::Access(_)) => return Err(no_verify_scope(&st.realm)),
        Err(e) => {
            if let Error::Upstream(why) = &e {
                tracing::debug!(error = %why, "introspect: caller's token could not be checked");
            }
            return Err(challenge(&st.realm, &e));
        }
    };
    if !machine.has_scope("verify") {
        return Err(no_verify_scope(&st.realm));
    }
    if machine.has_scope("platform") {
        return Ok(Caller::Platform);
    }
    Ok(Caller::Tenant(
        machine.tid.clone().unwrap_or_else(|| "default".to_owned()),
    ))
}

fn no_verify_scope(realm: &str) -> Response {
    let why = "a machine token with scope verify is needed";
    let value = format!(
        "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{why}\", scope=\"verify\""
    );
    let mut resp = (
        StatusCode::FORBIDDEN,
        axum::Json(json!({"error": "insufficient_scope", "error_description": why})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

async fn introspect(
    State(st): State<Arc<AppState>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match introspect_caller(&st, &headers, peer.map(|p| p.0.0)).await {
        Ok(caller) => caller,
        Err(refused) => {
            st.outcomes.introspect_refused.increment(1);
            return refused;
        }
    };
    let inactive = || axum::Json(Introspection::inactive()).into_response();
    let Some(token) = introspection_token(&headers, &body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    };
    let keys = st.verifier.keys.get();
    let checked = st.verifier.check(&token).await;
    // Another tenant's token is none of this caller's business: inactive, as RFC 7662 allows.
    let checked = match checked {
        Ok(Checked::Access(id)) if !caller.sees(id.tid()) => Err(Error::TenantNotAccepted),
        Ok(Checked::Machine(a)) if !caller.sees(a.tid.as_deref().unwrap_or("default")) => {
            Err(Error::TenantNotAccepted)
        }
        other => other,
    };
    match checked {
        Ok(Checked::Access(id)) => {
            st.outcomes.introspect_active.increment(1);
            let expect = keys.map(|k| k.expectations());
            let roles = id.roles().split(',').filter(|r| !r.is_empty());
            axum::Json(Introspection {
                active: true,
                token_type: Some(TokenType::AccessToken),
                sub: Some(id.sub().to_owned()),
                tid: Some(id.tid().to_owned()),
                sid: Some(id.sid().to_owned()),
                roles: Some(roles.map(str::to_owned).collect()),
                iss: expect.map(|e| e.issuer.clone()),
                aud: expect.map(|e| e.audience.clone()),
                iat: Some(id.iat),
                exp: Some(id.exp),
                ..Introspection::default()
            })
            .into_response()
        }
        Ok(Checked::Machine(a)) => {
            st.outcomes.introspect_active.increment(1);
            axum::Json(&*a).into_response()
        }
        Err(e) => {
            st.outcomes.introspect_inactive.increment(1);
            tracing::debug!(reason = e.description(), "introspect: inactive");
            inactive()
        }
    }
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let v = &st.verifier;
    let keys = v.keys.get().is_some_and(|k| k.loaded() && !k.is_empty());
    let feed = v.feed.connected();
    let stale = v.feed.stale();
    // Within the staleness limit a dropped feed leaves the verifier ready (degraded): an API
    // restart must not take every verifier out of a load balancer's rotation at once. Past
    // it (or before the first sync) tokens are refused, and it is not ready.
    let ready = keys && !stale;
    let status = match (ready, feed) {
        (false, _) => "not ready",
        (true, true) => "ready",
        (true, false) => "degraded",
    };
    let body = json!({
        "ready": ready,
        "status": status,
        "keys_loaded": keys,
        "feed_connected": feed,
        "feed_stale": stale,
        "feed_lag_seconds": v.feed.lag().map(|d| d.as_secs_f64()),
        "revocations": v.revocations.len(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let v = &st.verifier;
    metrics::gauge!("verifier_feed_connected").set(if v.feed.connected() { 1.0 } else { 0.0 });
    metrics::gauge!("verifier_feed_stale").set(if v.feed.stale() { 1.0 } else { 0.0 });
    metrics::gauge!("verifier_feed_degraded").set(if v.feed.degraded() { 1.0 } else { 0.0 });
    metrics::gauge!("verifier_feed_lag_seconds").set(
        v.feed
            .lag()
            .map_or(v.uptime().as_secs_f64(), |d| d.as_secs_f64()),
    );
    metrics::gauge!("verifier_revocation_entries").set(v.revocations.len() as f64);
    metrics::gauge!("verifier_cache_entries").set(v.cached() as f64);
    metrics::gauge!("verifier_keys_loaded").set(v.keys.get().map_or(0.0, |k| k.len() as f64));
    // The process's own figures (resident memory, open files, threads, CPU) and the runtime's
    // live tasks: what a soak watches for growth.
    static PROCESS: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    PROCESS
        .get_or_init(|| {
            let collector = metrics_process::Collector::default();
            collector.describe();
            collector
        })
        .collect();
    metrics::gauge!("runtime_alive_tasks").set(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks() as f64,
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ApiClient;
    use crate::feed::FeedState;
    use axum::extract::Request;

    /// State over an unreachable API: no token can be checked, so a caller let through gets
    /// `{"active": false}` and one refused gets 401.
    fn state(exempt: bool) -> Arc<AppState> {
        let api = ApiClient::new("http://127.0.0.1:9", None).unwrap();
        let verifier = Verifier::new(
            api,
            Arc::new(FeedState::new(Duration::from_secs(30))),
            100,
            Duration::from_secs(30),
            5,
        );
        verifier.accept_tenants(vec![]);
        Arc::new(AppState {
            verifier: Arc::new(verifier),
            metrics: metrics_exporter_prometheus::PrometheusBuilder::new()
                .build_recorder()
                .handle(),
            realm: "auth".into(),
            outcomes: Outcomes::register(),
            introspect_loopback_no_token: exempt,
        })
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_exemption_needs_a_loopback_peer_and_no_forwarding_header() {
        let v4: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let v4_other: SocketAddr = "127.9.9.9:5000".parse().unwrap();
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let lan: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        let public6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let mapped_lan: SocketAddr = "[::ffff:10.0.0.7]:5000".parse().unwrap();
        let plain = HeaderMap::new();
        for peer in [v4, v4_other, v6, mapped] {
            assert!(loopback_exempt(true, Some(peer), &plain), "{peer}");
            assert!(!loopback_exempt(false, Some(peer), &plain), "{peer}: off");
        }
        for peer in [lan, public6, mapped_lan] {
            assert!(!loopback_exempt(true, Some(peer), &plain), "{peer}");
        }
        assert!(!loopback_exempt(true, None, &plain), "unknown peer");
        for (name, value) in [
            ("forwarded", "for=203.0.113.9"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-host", "example.com"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "203.0.113.9"),
            ("X-Forwarded-For", "127.0.0.1"),
            ("x-forwarded-for", ""),
        ] {
            let h = headers(&[(name, value)]);
            assert!(!loopback_exempt(true, Some(v4), &h), "{name}: {value}");
        }
        // Headers that say nothing about forwarding leave it alone.
        let h = headers(&[("x-original-uri", "/a"), ("via", "1.1 cache")]);
        assert!(loopback_exempt(true, Some(v4), &h));
    }

    async fn introspect_in_process(
        st: &Arc<AppState>,
        peer: Option<&str>,
        extra: &[(&'static str, &'static str)],
    ) -> (StatusCode, String, String) {
        let mut req = Request::post("/introspect")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from("token=mt_whatever")).unwrap();
        if let Some(p) = peer {
            req.extensions_mut()
                .insert(ConnectInfo(p.parse::<SocketAddr>().unwrap()));
        }
        let resp = router(st.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (
            status,
            challenge,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn introspect_callers_without_a_token_pass_only_the_exemption_in_process() {
        let on = state(true);
        let lo = Some("127.0.0.1:4000");
        let (status, _, body) = introspect_in_process(&on, lo, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, r#"{"active":false}"#);
        for refused in [
            introspect_in_process(&on, lo, &[("x-forwarded-for", "203.0.113.9")]).await,
            introspect_in_process(&on, lo, &[("forwarded", "for=203.0.113.9")]).await,
            introspect_in_process(&on, Some("192.0.2.1:4000"), &[]).await,
            introspect_in_process(&on, None, &[]).await,
            introspect_in_process(&state(false), lo, &[]).await,
        ] {
            assert_eq!(refused.0, StatusCode::UNAUTHORIZED, "{refused:?}");
            assert_eq!(refused.1, r#"Bearer realm="auth""#);
        }
        // A presented token is always checked, exemption or not (here it cannot be: 401).
        let (status, challenge, _) =
            introspect_in_process(&on, lo, &[("authorization", "Bearer mt_nope")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }

    #[tokio::test]
    async fn serve_hands_the_peer_address_to_the_router() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state(true), async {
            let _ = stop_rx.await;
        }));
        let client = reqwest::Client::new();
        let post = |xff: bool| {
            let mut r = client
                .post(format!("http://{addr}/introspect"))
                .form(&[("token", "mt_whatever")]);
            if xff {
                r = r.header("x-forwarded-for", "203.0.113.9");
            }
            r.send()
        };
        let r = post(false).await.unwrap();
        assert_eq!(r.status(), 200, "a loopback peer, seen through serve");
        assert_eq!(r.text().await.unwrap(), r#"{"active":false}"#);
        assert_eq!(post(true).await.unwrap().status(), 401);
        let _ = stop_tx.send(());
        server.await.unwrap();
    }
}
