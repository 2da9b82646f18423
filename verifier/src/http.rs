//! The HTTP surface (axum): forward-auth on `/verify` and `/verify/*` (any method, body
//! ignored), RFC 7662 `POST /introspect`, `/healthz`, `/readyz`, `/metrics`. Answers for a
//! client's token are only ever 200, 401 or 403.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

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

fn outcome(o: &'static str) {
    metrics::counter!("verifier_requests_total", "outcome" => o).increment(1);
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

async fn verify(State(st): State<Arc<AppState>>, req: Request) -> Response {
    // Borrow the request's parts: extracting `HeaderMap` by value would clone it on the hot path.
    let (headers, uri, method) = (req.headers(), req.uri(), req.method());
    let (m, u) = original(headers, uri, method);
    let Some(token) = bearer(headers) else {
        tracing::debug!(method = m, uri = u, outcome = "missing", "verify");
        outcome("missing");
        return challenge(&st.realm, &Error::MissingToken);
    };
    match st.verifier.check(token).await {
        Ok(checked) => {
            tracing::debug!(method = m, uri = u, outcome = "allowed", "verify");
            outcome("allowed");
            let mut resp = Response::new(Body::empty());
            let h = resp.headers_mut();
            match checked {
                Checked::Access(id) => {
                    h.insert("x-auth-user", hv(id.sub()));
                    h.insert("x-auth-tenant", hv(id.tid()));
                    h.insert("x-auth-session", hv(id.sid()));
                    h.insert("x-auth-roles", hv(id.roles()));
                    h.insert(
                        "x-auth-token-type",
                        HeaderValue::from_static("access_token"),
                    );
                }
                Checked::Machine(a) => {
                    h.insert("x-auth-user", hv(a.client_id.as_deref().unwrap_or("")));
                    h.insert("x-auth-tenant", hv(a.tid.as_deref().unwrap_or("default")));
                    h.insert("x-auth-session", HeaderValue::from_static(""));
                    h.insert("x-auth-roles", HeaderValue::from_static(""));
                    h.insert("x-auth-scope", hv(a.scope.as_deref().unwrap_or("")));
                    h.insert(
                        "x-auth-token-type",
                        HeaderValue::from_static("machine_token"),
                    );
                }
            }
            resp
        }
        Err(e) => {
            if let Error::Upstream(why) = &e {
                tracing::debug!(error = %why, "token could not be checked");
            }
            tracing::debug!(
                method = m,
                uri = u,
                outcome = e.outcome(),
                reason = e.description(),
                "verify"
            );
            outcome(e.outcome());
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
            outcome("introspect_active");
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
            outcome("introspect_active");
            axum::Json(&*a).into_response()
        }
        Err(e) => {
            outcome("introspect_inactive");
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
