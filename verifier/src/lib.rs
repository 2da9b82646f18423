//! `auth-verifier`: the sidecar that answers "is this bearer token good, and whose is it?"
//! from memory, for services and for forward-auth proxies (nginx `auth_request`, Traefik
//! ForwardAuth, Envoy ext_authz, Caddy `forward_auth`).
//!
//! Modules, in reading order:
//! - [`config`]: the clap settings (`VERIFIER_*` environment variables).
//! - [`token`]: the token format shared with `auth-api` (claims, JWKS, revocation entries).
//! - [`error`]: the one error enum, and the status each variant answers with.
//! - [`client`]: the HTTP client for the API (JWKS, discovery, feed, introspection).
//! - [`keys`]: the JWK set as verification keys; refetch on unknown `kid`, rate-limited.
//! - [`revocation`]: the revocation set, indexed for a cheap check on every request.
//! - [`sse`] and [`feed`]: following the API's revocation stream, reload on reconnect,
//!   staleness.
//! - [`cache`]: the cache of verified tokens (moka), each until its token expires.
//! - [`verify`]: the check itself, with that cache.
//! - [`http`]: the server: a plain hyper service answers `/verify` (the hot path) and hands
//!   every other route to the axum router.
//!
//! [`run`] starts everything on a listener the caller bound, until `shutdown` resolves.

pub mod cache;
pub mod client;
pub mod config;
pub mod error;
pub mod feed;
pub mod http;
pub mod keys;
pub mod revocation;
pub mod sse;
pub mod token;
pub mod verify;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;

use crate::client::ApiClient;
use crate::feed::FeedState;
use crate::keys::{Expectations, Keys};
use crate::verify::Verifier;

/// How often the JWK set is refreshed even without an unknown `kid` (keys retired by the API
/// disappear from the verifier too).
const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// The process-wide Prometheus recorder, installed on first use.
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; metrics then go there.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Serves the verifier on `listener` until `shutdown` resolves, then drains in-flight
/// requests. The API need not be up: keys and the revocation list are fetched in the
/// background with retries, and tokens are refused (401) until both are in.
///
/// Fails if the HTTP client cannot be built or the listener has no local address. Errors of
/// `accept` are logged and retried, as `axum::serve` does.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The recorder first: the request and cache counters are registered with it once, here.
    let metrics = prometheus();
    let api = ApiClient::new(config.api_base(), config.api_token.clone())?;
    let feed = Arc::new(FeedState::new(config.staleness_limit));
    let verifier = Arc::new(Verifier::new(
        api.clone(),
        feed.clone(),
        config.tenants.clone(),
        config.cache_capacity,
        config.machine_token_ttl,
        config.leeway,
    ));
    let state = Arc::new(http::AppState {
        verifier: verifier.clone(),
        metrics,
        realm: config.realm.clone(),
        outcomes: http::Outcomes::register(),
    });
    metrics::gauge!("verifier_feed_connected").set(0.0);

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(feed::follow(
        api.clone(),
        verifier.revocations.clone(),
        feed,
    ));
    tasks.spawn(load_keys(verifier.clone(), config.clone()));
    let v = verifier.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            v.revocations.prune(verify::now_secs());
            v.purge_expired();
        }
    });

    tracing::info!(addr = %listener.local_addr()?, api = %config.api_base(), "auth-verifier listening");
    http::serve(listener, state, shutdown).await;
    tasks.abort_all();
    Ok(())
}

/// Learns the issuer (configured, or from discovery), loads the JWK set, then refreshes it
/// periodically, and at once when the feed reports a revoked key (the API has a new one).
/// Retries with backoff while the API is unreachable.
async fn load_keys(verifier: Arc<Verifier>, config: Config) {
    let api = &verifier.api;
    let mut backoff = Duration::from_millis(100);
    let issuer = loop {
        if let Some(iss) = &config.issuer {
            break iss.clone();
        }
        match api.discovery().await {
            Ok(d) => break d.issuer,
            Err(e) => tracing::warn!(error = %e, "discovery failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    let audience = config.audience.clone().unwrap_or_else(|| issuer.clone());
    let keys = verifier.keys.get_or_init(|| {
        Keys::new(
            Expectations {
                issuer,
                audience,
                leeway: config.leeway,
            },
            config.jwks_min_interval,
        )
    });
    loop {
        match keys.refresh(api).await {
            Ok(()) => {
                tracing::info!(keys = keys.len(), "signing keys loaded");
                tokio::select! {
                    _ = tokio::time::sleep(JWKS_REFRESH) => {}
                    _ = verifier.revocations.key_revoked() => {}
                }
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
