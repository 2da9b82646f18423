//! GraphiQL for people (placeholder until the offline build lands).

use axum::response::{IntoResponse, Response};

/// Where the assets are served.
pub const ASSET_PREFIX: &str = "/graphiql/";

/// The GraphiQL page.
pub fn page() -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        "GraphiQL is not built yet",
    )
        .into_response()
}

/// One embedded asset.
pub async fn asset(axum::extract::Path(_file): axum::extract::Path<String>) -> Response {
    axum::http::StatusCode::NOT_FOUND.into_response()
}
