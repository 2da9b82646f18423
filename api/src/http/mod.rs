//! The HTTP surface: the axum router and what its handlers share. GraphQL over HTTP is in
//! [`graphql`] (with GraphiQL in [`graphiql`]), discovery and JWKS in [`well_known`], the
//! machine endpoints (introspection, revocation feed) in [`machine`], health and metrics in
//! [`ops`]. Malformed requests get a GraphQL-shaped 4xx, never a 500.

pub mod graphiql;
mod graphql;
pub mod machine;
mod ops;
mod well_known;
pub mod ws;

pub use ops::metrics_handle;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::graphql::{AuthSchema, ErrorCode};
use crate::service::Auth;

/// Most operations one batched request may hold.
pub const MAX_BATCH: usize = 10;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub auth: Auth,
    /// The GraphQL schema.
    pub schema: AuthSchema,
    /// Settings.
    pub config: Arc<Config>,
}

/// The router of the API.
pub fn router(state: AppState) -> Router {
    let graphiql_assets = format!("{}{{file}}", graphiql::ASSET_PREFIX);
    Router::new()
        .route("/graphql", get(graphql::graphql_get).post(graphql::graphql_post))
        .route("/graphql/ws", get(ws::graphql_ws))
        .route(&graphiql_assets, get(graphiql::asset))
        .route("/.well-known/jwks.json", get(well_known::jwks))
        .route("/.well-known/openid-configuration", get(well_known::openid_configuration))
        .route("/introspect", post(machine::introspect))
        .route("/internal/revocations", get(machine::revocations))
        .route("/internal/revocations/stream", get(machine::revocation_stream))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics_text))
        .fallback(|| async { request_error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such endpoint") })
        .layer(cors(state.auth.clone()))
        .layer(middleware::from_fn(ops::track))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    // Path only: query strings may carry tokens.
                    tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
                })
                // A 5xx is logged where it arises, once a second per kind at most
                // (`telemetry::failure`), not again per response: with the database down
                // under load that was one ERROR line per request.
                .on_failure(()),
        )
        .with_state(state)
}

/// CORS for browser frontends on other origins: a preflight names no tenant, so it is
/// answered for `AUTH_CORS_ORIGINS` and every tenant's `allowedOrigins` together; the
/// request itself is then checked against its own tenant's list (see `graphql.rs`). Never a
/// wildcard, no credentials (tokens travel in `Authorization`, not cookies).
fn cors(auth: Auth) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(
            move |origin: HeaderValue, _parts: &axum::http::request::Parts| {
                let auth = auth.clone();
                async move {
                    match origin.to_str() {
                        Ok(origin) => auth.cors_origin_known(origin).await,
                        Err(_) => false,
                    }
                }
            },
        ))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-tenant"),
        ])
        .max_age(Duration::from_secs(600))
}

/// A GraphQL-shaped error response for a request that never reached execution.
pub fn request_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code.as_str()}}]});
    (status, Json(body)).into_response()
}

/// The bearer token of the `Authorization` header; an empty string for another scheme so
/// that it fails authentication rather than being ignored.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .unwrap_or_default()
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    Some(if scheme.eq_ignore_ascii_case("bearer") {
        token.trim()
    } else {
        ""
    })
}

/// How long shutdown waits for in-flight requests (and then for the workers).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
