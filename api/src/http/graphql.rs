//! GraphQL over HTTP: POST with a JSON body (a single operation or a batch), GET with a
//! query string (queries only) or GraphiQL for a browser. Requests that never reach
//! execution get a GraphQL-shaped 4xx with `BAD_USER_INPUT`, never a 500.

use std::net::{IpAddr, SocketAddr};

use async_graphql::http::parse_query_string;
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse};
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, MAX_BATCH, bearer, graphiql, request_error};
use crate::config::Config;
use crate::domain::Device;
use crate::graphql::{ErrorCode, HashBudget, RequestContext};
use crate::service::Error as ServiceError;

pub(super) async fn graphql_post(
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
    let bytes = match axum::body::to_bytes(body, state.config.body_limit()).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = format!(
                "request body is larger than {} bytes",
                state.config.body_limit()
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

pub(super) async fn graphql_get(
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
            crate::telemetry::failure("tenant lookup failed", &error);
            return request_error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal,
                "internal error",
            );
        }
    };
    if let Some(page) = headers.get(header::ORIGIN)
        && !same_origin(page, headers)
        && !page
            .to_str()
            .is_ok_and(|page| state.auth.cors_origin_allowed(&tenant, page))
    {
        return request_error(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this origin may not call the API for this tenant (AUTH_CORS_ORIGINS, allowedOrigins)",
        );
    }
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

/// Whether the page's `Origin` is the API's own (GraphiQL): the same host and port as the
/// request's `Host`.
fn same_origin(page: &HeaderValue, headers: &HeaderMap) -> bool {
    let (Ok(page), Some(host)) = (
        page.to_str(),
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    page.split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
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
pub(super) fn origin(config: &Config, peer: SocketAddr, headers: &HeaderMap) -> Device {
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
