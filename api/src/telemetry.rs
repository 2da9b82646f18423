//! Structured logs with `tracing`. Tokens, passwords and secrets are never logged: spans
//! carry the path only, and services log ids, never credentials.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber (`RUST_LOG` filters, default `info`); `json` selects JSON
/// lines. A second call is a no-op.
pub fn init(format: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
