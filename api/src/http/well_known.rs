//! Discovery for token consumers: the JWK set and the OpenID configuration document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use auth_protocol::Discovery;

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
    let keys = state.auth.jwks().await;
    let body = Discovery::new(issuer, keys.keys.iter().map(|k| k.alg.as_str()));
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response()
}
