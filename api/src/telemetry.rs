//! Structured logs with `tracing`. Tokens, passwords and secrets are never logged: spans
//! carry the path only, and services log ids, never credentials. Failures a caller is
//! answered `INTERNAL` or 503 for are logged by [`failure`]: one line each (the error and its
//! causes, no backtrace), at most one a second per kind, so that a database outage under load
//! does not flood the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// At most one line per kind in this long.
const FAILURE_EVERY: Duration = Duration::from_secs(1);

/// Per kind: when it was last logged and how many were not logged since.
static FAILURES: Mutex<Option<HashMap<&'static str, (Instant, u64)>>> = Mutex::new(None);

/// Whether a failure of `kind` at `now` is logged, and how many of that kind were suppressed
/// before it (counted until then).
fn admit(kind: &'static str, now: Instant) -> Option<u64> {
    let mut failures = FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    let failures = failures.get_or_insert_with(HashMap::new);
    match failures.get_mut(kind) {
        Some((last, suppressed)) if now.duration_since(*last) < FAILURE_EVERY => {
            *suppressed += 1;
            None
        }
        Some((last, suppressed)) => {
            *last = now;
            Some(std::mem::take(suppressed))
        }
        None => {
            failures.insert(kind, (now, 0));
            Some(0)
        }
    }
}

/// `error` and its causes on one line: `outer: cause: root cause` (a cause whose text the
/// line already ends with, as wrappers that repeat their source's message, is left out).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.replace('\n', " ")
}

/// Log a failure the caller was answered `INTERNAL` or 503 for: one ERROR line with `kind`
/// as its message and the error's chain, no backtrace; at most one a second per `kind`, the
/// next line saying how many were suppressed in between (`suppressed`).
pub fn failure(kind: &'static str, error: &(dyn std::error::Error + 'static)) {
    if let Some(suppressed) = admit(kind, Instant::now()) {
        tracing::error!(suppressed, error = %chain(error), "{kind}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_per_kind_with_the_count_suppressed() {
        let t0 = Instant::now();
        assert_eq!(admit("test a", t0), Some(0));
        assert_eq!(admit("test a", t0 + Duration::from_millis(10)), None);
        assert_eq!(admit("test a", t0 + Duration::from_millis(900)), None);
        assert_eq!(admit("test b", t0 + Duration::from_millis(900)), Some(0));
        assert_eq!(admit("test a", t0 + Duration::from_millis(1000)), Some(2));
        assert_eq!(admit("test a", t0 + Duration::from_millis(1500)), None);
        assert_eq!(admit("test a", t0 + Duration::from_millis(2100)), Some(1));
    }

    #[test]
    fn the_chain_is_one_line() {
        let inner = std::io::Error::other("connection refused");
        let outer = anyhow::Error::new(inner).context("pool timed out");
        let line = chain(outer.as_ref());
        assert_eq!(line, "pool timed out: connection refused");
        assert!(!line.contains('\n'));
    }
}
