//! GraphiQL for people: the page and its assets, served from the binary (no CDN).
//!
//! The page is static HTML that loads, from this service only, React 18 and GraphiQL 3.9.0
//! (the files in `api/assets/graphiql`, copied unchanged from the pinned npm packages by
//! `scripts/update-graphiql.sh` and checked byte for byte by `tests/browser`), a small
//! stylesheet and `init.js`, the page's own bootstrap (fetcher, example document, the
//! "use tokens" button). Nothing is inline, so the Content-Security-Policy can allow only
//! `'self'` for scripts, styles and connections.
//!
//! Asset URLs carry `?v=<hash of the file>`, computed once at first use, so the assets can
//! be cached for a year and a new binary still gets fresh copies. The router ignores the
//! query string.
//!
//! Routing (done by the router, not here): `GET /graphql` from a browser (Accept contains
//! `text/html`, no `query` parameter) answers [`page`]; `GET {ASSET_PREFIX}{file}` answers
//! [`asset`]. Whether GraphiQL is on at all (`AUTH_GRAPHIQL`) is the router's decision.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Where the assets are served; the lead routes `GET {ASSET_PREFIX}{file}` to `asset`.
pub const ASSET_PREFIX: &str = "/graphiql/";

/// The page's Content-Security-Policy, with the style nonce of this response.
///
/// Only `'self'` for scripts, styles and connections; `'self'` in `connect-src` also covers
/// `ws:`/`wss:` to the same host and port (CSP Level 3), which the subscriptions client
/// uses. One exception, for styles only: the dialogs and menus of GraphiQL (Radix, through
/// `react-remove-scroll`) insert a `<style>` element while open; it carries the nonce that
/// `init.js` hands over (`window.__webpack_nonce__`, read from `<meta name="csp-nonce">`).
/// No `'unsafe-inline'`, no `'unsafe-eval'`. `data:` is allowed for fonts (GraphiQL's CSS
/// embeds its fonts) and images (the empty favicon, so the browser does not ask for
/// `/favicon.ico`).
fn csp(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; font-src 'self' data:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
}

/// A fresh nonce: 128 bits of SipHash, keyed once per process from the OS's randomness
/// (std's `RandomState`), over a counter and the clock. Unpredictable without the key,
/// which is all a CSP nonce needs.
fn nonce() -> String {
    use std::fmt::Write as _;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};

    static KEY: LazyLock<std::collections::hash_map::RandomState> =
        LazyLock::new(std::collections::hash_map::RandomState::new);
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut out = String::with_capacity(32);
    for half in 0u8..2 {
        let mut hasher = KEY.build_hasher();
        hasher.write_u64(count);
        hasher.write_u128(now);
        hasher.write_u8(half);
        let _ = write!(out, "{:016x}", hasher.finish());
    }
    out
}

/// Cache-Control of the assets: their URLs are versioned by content hash.
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One embedded file: name under [`ASSET_PREFIX`], Content-Type, bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file served under [`ASSET_PREFIX`]; any other name is a 404.
static ASSETS: &[Asset] = &[
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/graphiql/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/graphiql/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        bytes: include_bytes!("../../assets/graphiql/graphiql.min.css"),
    },
    Asset {
        name: "page.css",
        content_type: CSS,
        bytes: include_bytes!("../../assets/graphiql/page.css"),
    },
    Asset {
        name: "init.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/graphiql/init.js"),
    },
];

/// FNV-1a, 64 bits: a cache buster, not a security measure.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `{ASSET_PREFIX}{name}?v={hash}` for a file of [`ASSETS`].
fn asset_url(name: &str) -> String {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .expect("asset_url is only called with names from ASSETS");
    format!("{ASSET_PREFIX}{name}?v={:016x}", fnv1a(asset.bytes))
}

/// Marks where [`page`] puts the nonce of the response.
const NONCE_SLOT: &str = "{{NONCE}}";

/// The page, built once, with [`NONCE_SLOT`] for the nonce.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="csp-nonce" content="{nonce_slot}">
<title>GraphiQL · auth-api</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{graphiql_css}">
<link rel="stylesheet" href="{page_css}">
</head>
<body>
<div id="graphiql"><p class="graphiql-loading">Loading GraphiQL…</p></div>
<noscript><p class="graphiql-loading">GraphiQL needs JavaScript. The API itself answers POST /graphql.</p></noscript>
<script src="{react}" defer></script>
<script src="{react_dom}" defer></script>
<script src="{graphiql_js}" defer></script>
<script src="{init}" defer></script>
</body>
</html>
"#,
        graphiql_css = asset_url("graphiql.min.css"),
        page_css = asset_url("page.css"),
        react = asset_url("react.production.min.js"),
        react_dom = asset_url("react-dom.production.min.js"),
        graphiql_js = asset_url("graphiql.min.js"),
        init = asset_url("init.js"),
        nonce_slot = NONCE_SLOT,
    )
});

/// The GraphiQL HTML page for `GET /graphql` from a browser, with security headers
/// (CSP allowing only 'self' for scripts, styles, connections (plus ws/wss of the same host for subscriptions if needed), X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer, Cache-Control no-store).
///
/// The page posts to its own URL (`location.pathname`), so it works wherever the
/// GraphQL endpoint is mounted. Each response has its own style nonce (see [`csp`]).
/// Never fails.
pub fn page() -> Response {
    let nonce = nonce();
    let csp = HeaderValue::from_str(&csp(&nonce)).expect("the CSP is ASCII");
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, csp),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        PAGE.replace(NONCE_SLOT, &nonce),
    )
        .into_response()
}

/// One embedded asset by file name (include_bytes!), with the right Content-Type, nosniff and a long Cache-Control; 404 for any other name.
///
/// Only the fixed names of the embedded files match, so no path ever reaches the file
/// system. The 404 is plain text.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(asset) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(ASSET_CACHE_CONTROL),
                ),
                (
                    header::HeaderName::from_static("cross-origin-resource-policy"),
                    HeaderValue::from_static("same-origin"),
                ),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            "not found",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_references_every_asset_with_its_prefix() {
        for asset in ASSETS {
            assert!(
                PAGE.contains(&format!("\"{ASSET_PREFIX}{}?v=", asset.name)),
                "page does not load {}",
                asset.name
            );
        }
        assert!(
            !PAGE.contains("<script>"),
            "no inline scripts: the CSP forbids them"
        );
        assert!(
            !PAGE.contains("<style"),
            "no inline styles: the CSP forbids them"
        );
        assert!(
            !PAGE.contains("style="),
            "no inline style attributes: the CSP forbids them"
        );
    }

    #[test]
    fn page_headers() {
        let res = page();
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "script-src 'self';",
            "style-src 'self' 'nonce-",
            "connect-src 'self';",
        ] {
            assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
        }
        assert!(
            !csp.contains("unsafe"),
            "CSP must not allow unsafe-*: {csp}"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        // The handler never awaits anything, so a no-op waker suffices: no runtime needed.
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("asset handler should not wait"),
        }
    }

    #[test]
    fn nonce_in_csp_and_page_fresh_each_time() {
        let a = nonce();
        let b = nonce();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let res = page();
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        let start = csp.find("'nonce-").unwrap() + "'nonce-".len();
        let nonce = &csp[start..start + 32];
        let body = run(axum::body::to_bytes(res.into_body(), usize::MAX)).unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(body.contains(&format!(r#"<meta name="csp-nonce" content="{nonce}">"#)));
        assert!(!body.contains(NONCE_SLOT));
    }

    #[test]
    fn assets_and_404() {
        for asset in ASSETS {
            let res = run(super::asset(Path(asset.name.to_owned())));
            assert_eq!(res.status(), StatusCode::OK, "{}", asset.name);
            let h = res.headers();
            assert_eq!(h[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::CACHE_CONTROL], ASSET_CACHE_CONTROL);
            assert!(!asset.bytes.is_empty());
        }
        for bad in [
            "",
            "VERSIONS",
            "../Cargo.toml",
            "graphiql.min.js.map",
            "init.js/x",
        ] {
            let res = run(super::asset(Path(bad.to_owned())));
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad:?}");
        }
    }
}
