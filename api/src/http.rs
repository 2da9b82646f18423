//! The HTTP surface: the axum router, GraphQL over HTTP (POST JSON, GET queries, GraphiQL),
//! discovery and JWKS, health and metrics. Malformed requests get a GraphQL-shaped 4xx,
//! never a 500.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_graphql::http::parse_query_string;
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse};
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::domain::Device;
use crate::graphql::{AuthSchema, ErrorCode, HashBudget, RequestContext};
use crate::service::{Auth, Error as ServiceError};
use crate::{graphiql, internal};

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
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route(&graphiql_assets, get(graphiql::asset))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(openid_configuration))
        .route("/introspect", post(internal::introspect))
        .route("/internal/revocations", get(internal::revocations))
        .route("/internal/revocations/stream", get(internal::revocation_stream))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async { request_error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such endpoint") })
        .layer(middleware::from_fn(track))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            // Path only: query strings may carry tokens.
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
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

async fn graphql_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(content_type.is_empty()
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/graphql-response+json"))
    {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadUserInput,
            "send the request as application/json",
        );
    }
    let bytes = match axum::body::to_bytes(body, state.config.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = format!(
                "request body is larger than {} bytes",
                state.config.max_body_bytes
            );
            return request_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BadUserInput,
                &message,
            );
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(batch) => batch,
        Err(error) => {
            let message = format!("body is not a GraphQL request: {error}");
            return request_error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, &message);
        }
    };
    execute(state, peer, &headers, batch).await
}

async fn graphql_get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !query.split('&').any(|pair| pair.starts_with("query=")) {
        if wants_html && state.config.graphiql {
            return graphiql::page();
        }
        return request_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "a GET request needs a `query` parameter",
        );
    }
    let request = match parse_query_string(&query) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("query string is not a GraphQL request: {error}");
            return request_error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, &message);
        }
    };
    // GraphQL over HTTP: GET may not change anything.
    if let Ok(document) = async_graphql::parser::parse_query(&request.query) {
        let is_mutation = document.operations.iter().any(|(name, op)| {
            let selected = match (&request.operation_name, name) {
                (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
                _ => true,
            };
            selected && op.node.ty != OperationType::Query
        });
        if is_mutation {
            let mut response = request_error(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::BadUserInput,
                "mutations need POST",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            return response;
        }
    }
    execute(state, peer, &headers, BatchRequest::Single(request)).await
}

async fn execute(
    state: AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    batch: BatchRequest,
) -> Response {
    if let BatchRequest::Batch(requests) = &batch
        && (requests.is_empty() || requests.len() > MAX_BATCH)
    {
        let message = format!("a batch holds 1 to {MAX_BATCH} operations");
        return request_error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, &message);
    }
    let empty = match &batch {
        BatchRequest::Single(request) => request.query.trim().is_empty(),
        BatchRequest::Batch(requests) => requests.iter().any(|r| r.query.trim().is_empty()),
    };
    if empty {
        return request_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "`query` is required",
        );
    }
    let slug = headers.get("x-tenant").and_then(|v| v.to_str().ok());
    let tenant = match state.auth.tenant(slug).await {
        Ok(tenant) => tenant,
        Err(ServiceError::NotFound(_)) => {
            return request_error(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "unknown tenant (X-Tenant)",
            );
        }
        Err(error) => {
            tracing::error!(error = ?error, "tenant lookup failed");
            return request_error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal,
                "internal error",
            );
        }
    };
    let origin = origin(&state.config, peer, headers);
    let bearer = bearer(headers).map(str::to_owned);
    let hashes = HashBudget::default();
    let context = || {
        RequestContext::new(
            tenant.clone(),
            bearer.clone(),
            origin.clone(),
            hashes.clone(),
        )
    };
    let batch = match batch {
        BatchRequest::Single(request) => BatchRequest::Single(request.data(context())),
        BatchRequest::Batch(requests) => {
            BatchRequest::Batch(requests.into_iter().map(|r| r.data(context())).collect())
        }
    };
    let mut response: BatchResponse = state.schema.execute_batch(batch).await;
    label_request_errors(&mut response);
    let graphql_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/graphql-response+json"));
    let content_type = if graphql_json {
        "application/graphql-response+json"
    } else {
        "application/json"
    };
    let mut http = (StatusCode::OK, Json(response)).into_response();
    http.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    http.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    http
}

/// Parse and validation errors (wrong types, missing fields, unknown fields, limits) carry
/// no code from async-graphql: they are the client's mistake, so `BAD_USER_INPUT`.
fn label_request_errors(response: &mut BatchResponse) {
    let responses: Vec<&mut async_graphql::Response> = match response {
        BatchResponse::Single(one) => vec![one],
        BatchResponse::Batch(many) => many.iter_mut().collect(),
    };
    for response in responses {
        for error in &mut response.errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            if extensions.get("code").is_none() {
                extensions.set("code", ErrorCode::BadUserInput.as_str());
            }
        }
    }
}

/// The client's address and device: `X-Forwarded-For` is believed only from trusted proxies.
fn origin(config: &Config, peer: SocketAddr, headers: &HeaderMap) -> Device {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect::<String>());
    let (os, browser) = user_agent
        .as_deref()
        .map(parse_user_agent)
        .unwrap_or_default();
    Device {
        user_agent,
        os,
        browser,
        ip: Some(client_ip(config, peer.ip(), headers).to_string()),
    }
}

/// Operating system and browser named by a User-Agent.
fn parse_user_agent(user_agent: &str) -> (Option<String>, Option<String>) {
    let Some(parsed) = woothee::parser::Parser::new().parse(user_agent) else {
        return (None, None);
    };
    let known = |value: &str| {
        (value != woothee::woothee::VALUE_UNKNOWN && !value.is_empty()).then(|| value.to_owned())
    };
    (known(parsed.os), known(parsed.name))
}

fn client_ip(config: &Config, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let trusted = |ip: &IpAddr| config.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    // Walk from the nearest hop outwards; the first address we do not trust is the client.
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !trusted(ip))
        .copied()
        .or(hops.first().copied())
        .unwrap_or(peer)
}

async fn jwks(State(state): State<AppState>) -> Response {
    state.auth.keys().reload_if_stale().await;
    let keys = state.auth.keys().jwks();
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(keys.as_ref().clone()),
    )
        .into_response()
}

async fn openid_configuration(State(state): State<AppState>) -> Response {
    let issuer = &state.config.issuer;
    let mut algs: Vec<String> = state
        .auth
        .keys()
        .jwks()
        .keys
        .iter()
        .map(|k| k.alg.clone())
        .collect();
    algs.dedup();
    let body = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["refresh_token"],
    });
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.auth.store().db().ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
    }
}

/// The process-wide Prometheus recorder (installed once, shared by every app in a process).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        handle
    })
}

async fn metrics_text() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_handle().render(),
    )
        .into_response()
}

/// Count requests and their latency by route and status.
async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "path" => path.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "path" => path)
        .record(started.elapsed().as_secs_f64());
    response
}

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
