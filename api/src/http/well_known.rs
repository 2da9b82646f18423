//! Discovery for token consumers: the JWK set and the OpenID configuration document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// `GET /.well-known/jwks.json`: the public keys tokens are signed with.
pub(super) async fn jwks(State(state): State<AppState>) -> Response {
    let keys = state.auth.jwks().await;
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(keys.as_ref().clone()),
    )
        .into_response()
}

/// `GET /.well-known/openid-configuration`: the issuer and where its keys and endpoints are.
pub(super) async fn openid_configuration(State(state): State<AppState>) -> Response {
    let issuer = &state.config.issuer;
    let mut algs: Vec<String> = state
        .auth
        .jwks()
        .await
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
