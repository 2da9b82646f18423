//! The HTTP surface: forward-auth on `/verify` and `/verify/*` (any method, body ignored),
//! RFC 7662 `POST /introspect`, `/healthz`, `/readyz`, `/metrics`. Answers for a client's
//! token are only ever 200, 401 or 403.
//!
//! [`serve`] runs a plain hyper HTTP/1.1 server: its service answers `/verify…` itself (for a
//! cached token synchronously, with no allocation beyond the response's header values) and
//! hands every other request to the axum [`router`], which routes `/verify` too for in-process
//! use. Both paths produce the same answers through [`answer`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures_util::future::{BoxFuture, Either, Ready, ready};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use metrics::Counter;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::Error;
use crate::verify::{Checked, Verifier};

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

/// The verifier's router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/verify", any(verify))
        .route("/verify/", any(verify))
        .route("/verify/{*rest}", any(verify))
        .route("/introspect", post(introspect))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Whether `path` is answered by the forward-auth handler: `/verify`, `/verify/` and
/// `/verify/…`, as the router's three routes.
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
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
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
            route(&state, &router, req)
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
/// anything else through the router.
fn route(
    state: &Arc<AppState>,
    router: &Router,
    req: hyper::Request<Incoming>,
) -> Either<Ready<Answer>, BoxFuture<'static, Answer>> {
    if !is_verify(req.uri().path()) {
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
        Some(checked) => Either::Left(ready(Ok(answer(state, headers, uri, method, checked)))),
        None => {
            let state = state.clone();
            Either::Right(Box::pin(async move {
                let (headers, uri, method) = (req.headers(), req.uri(), req.method());
                let token = bearer(headers).unwrap_or_default();
                let checked = state.verifier.check(token).await;
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

async fn verify(State(st): State<Arc<AppState>>, req: Request) -> Response {
    // Borrow the request's parts: extracting `HeaderMap` by value would clone it on the hot path.
    let (headers, uri, method) = (req.headers(), req.uri(), req.method());
    let checked = match bearer(headers) {
        Some(token) => st.verifier.check(token).await,
        None => Err(Error::MissingToken),
    };
    answer(&st, headers, uri, method, checked)
}

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
                    h.insert(X_AUTH_TOKEN_TYPE, HeaderValue::from_static("access_token"));
                }
                Checked::Machine(a) => {
                    h.insert(X_AUTH_USER, hv(a.client_id.as_deref().unwrap_or("")));
                    h.insert(X_AUTH_TENANT, hv(a.tid.as_deref().unwrap_or("default")));
                    h.insert(X_AUTH_SESSION, HeaderValue::from_static(""));
                    h.insert(X_AUTH_ROLES, HeaderValue::from_static(""));
                    h.insert(X_AUTH_SCOPE, hv(a.scope.as_deref().unwrap_or("")));
                    h.insert(X_AUTH_TOKEN_TYPE, HeaderValue::from_static("machine_token"));
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

async fn introspect(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let inactive = || axum::Json(json!({"active": false})).into_response();
    let Some(token) = introspection_token(&headers, &body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    };
    let keys = st.verifier.keys.get();
    match st.verifier.check(&token).await {
        Ok(Checked::Access(id)) => {
            st.outcomes.introspect_active.increment(1);
            let exp = keys.map(|k| k.expectations().clone());
            let roles: Vec<&str> = id.roles().split(',').filter(|r| !r.is_empty()).collect();
            axum::Json(json!({
                "active": true,
                "token_type": "access_token",
                "sub": id.sub(),
                "tid": id.tid(),
                "sid": id.sid(),
                "roles": roles,
                "exp": id.exp,
                "iat": id.iat,
                "iss": exp.as_ref().map(|e| e.issuer.clone()),
                "aud": exp.as_ref().map(|e| e.audience.clone()),
            }))
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
    let ready = keys && feed && !stale;
    let body = json!({
        "ready": ready,
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
    metrics::gauge!("verifier_feed_lag_seconds").set(
        v.feed
            .lag()
            .map_or(v.uptime().as_secs_f64(), |d| d.as_secs_f64()),
    );
    metrics::gauge!("verifier_revocation_entries").set(v.revocations.len() as f64);
    metrics::gauge!("verifier_cache_entries").set(v.cached() as f64);
    metrics::gauge!("verifier_keys_loaded").set(v.keys.get().map_or(0.0, |k| k.len() as f64));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}
