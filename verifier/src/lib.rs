//! `auth-verifier`: the sidecar that answers "is this bearer token good, and whose is it?"
//! from memory, for services and for forward-auth proxies (nginx `auth_request`, Traefik
//! ForwardAuth, Envoy ext_authz, Caddy `forward_auth`). What it exchanges with `auth-api`
//! (claims and their validation policy, JWKS, revocation entries, introspection answers,
//! discovery) is defined once, in `auth-protocol`.
//!
//! Modules, in reading order:
//! - [`config`]: the clap settings (`VERIFIER_*` environment variables).
//! - [`error`]: the one error enum, and the status each variant answers with.
//! - [`client`]: the HTTP client for the API (JWKS, discovery, feed, introspection).
//! - [`keys`]: the JWK set as verification keys; refetch on unknown `kid`, rate-limited.
//! - [`revocation`]: the revocation set, indexed for a cheap check on every request.
//! - [`sse`] and [`feed`]: following the API's revocation stream, reload on reconnect,
//!   staleness.
//! - [`identity`]: a verified access token as it is kept, in one allocation.
//! - [`cache`]: the cache of verified tokens (moka), each until its token expires.
//! - [`verify`]: the check itself, with that cache: key computed once, cache probed once.
//! - [`http`]: the server: a plain hyper service answers `/verify` (the hot path) and hands
//!   every other route to the axum router.
//!
//! [`run`] starts everything on a listener the caller bound, until `shutdown` resolves.
//! At start it checks its own API token ([`tenant_binding`]): a token the API refuses, or one
//! without scope `verify`, stops it; a token without scope `platform` binds it to that token's
//! tenant. `docs/verifier-security.md` describes these rules and the `/introspect` caller
//! rules.

pub mod cache;
pub mod client;
mod clock;
pub mod config;
pub mod error;
pub mod feed;
pub mod http;
pub mod identity;
pub mod keys;
pub mod revocation;
pub mod sse;
pub mod verify;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;

use crate::client::{ApiClient, OwnToken};
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
/// requests. The API need not be up: the check of the verifier's own token, keys and the
/// revocation list are fetched in the background with retries, and tokens are refused (401)
/// until all are in.
///
/// Fails if the HTTP client cannot be built or the listener has no local address, and (after
/// draining) when the API refuses `VERIFIER_API_TOKEN`, the token lacks scope `verify`, or
/// `VERIFIER_TENANTS` names a tenant the token is not bound to ([`tenant_binding`]). Errors of
/// `accept` are logged and retried, as `axum::serve` does.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The recorder first: the request and cache counters are registered with it once, here.
    let metrics = prometheus();
    let local = listener.local_addr()?;
    let api = ApiClient::new(config.api_base(), config.api_token.clone())?;
    let feed = Arc::new(FeedState::new(config.staleness_limit));
    let verifier = Arc::new(Verifier::new(
        api.clone(),
        feed.clone(),
        config.cache_capacity,
        config.machine_token_ttl,
        config.leeway,
    ));
    if config.api_token.is_none() {
        // Nothing to check: the dev setup accepts what it is configured to.
        let tenants = tenant_binding(&config.tenants, None)?;
        log_tenants(&tenants, false);
        verifier.accept_tenants(tenants);
    }
    let introspect_loopback_no_token = config.introspect_loopback_no_token(local);
    let state = Arc::new(http::AppState {
        verifier: verifier.clone(),
        metrics,
        realm: config.realm.clone(),
        outcomes: http::Outcomes::register(),
        introspect_loopback_no_token,
    });
    metrics::gauge!("verifier_feed_connected").set(0.0);

    // A start-up check that fails stops the server like `shutdown` does, then `run` fails.
    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let failure = Arc::new(std::sync::Mutex::new(None::<anyhow::Error>));
    let slot = failure.clone();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            Ok(e) = fail_rx => {
                tracing::error!(error = %e, "start-up check failed; stopping");
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }
    };

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(feed::follow(
        api.clone(),
        verifier.revocations.clone(),
        feed,
    ));
    tasks.spawn(load_keys(verifier.clone(), config.clone(), fail_tx));
    let v = verifier.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            v.revocations.prune(clock::now_secs());
            v.purge_expired();
        }
    });

    tracing::info!(
        addr = %local,
        api = %config.api_base(),
        introspect_loopback_no_token,
        "auth-verifier listening"
    );
    http::serve(listener, state, stop).await;
    tasks.abort_all();
    match failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The tenants (slugs; empty: every tenant) a verifier accepts, from `VERIFIER_TENANTS`
/// (`configured`) and what the API said of `VERIFIER_API_TOKEN` (`None`: no token, nothing
/// to check):
///
/// - refused by the API (401/403), inactive, or without scope `verify`: an error naming
///   `VERIFIER_API_TOKEN`;
/// - with scope `platform`: `configured` (the API shows such a token every tenant's
///   revocations);
/// - otherwise the token is bound to its tenant `tid`: `[tid]`, and an error naming both
///   settings if `configured` lists any other tenant.
pub fn tenant_binding(configured: &[String], own: Option<OwnToken>) -> anyhow::Result<Vec<String>> {
    let configured: Vec<String> = configured
        .iter()
        .filter(|t| !t.is_empty())
        .cloned()
        .collect();
    let answer = match own {
        None => return Ok(configured),
        Some(OwnToken::Refused(403)) => anyhow::bail!(
            "VERIFIER_API_TOKEN was refused by the API (403): it needs scope `verify`"
        ),
        Some(OwnToken::Refused(status)) => anyhow::bail!(
            "VERIFIER_API_TOKEN was refused by the API ({status}): it is not an active machine \
             token there (create one with `auth-api token create --scope verify`)"
        ),
        Some(OwnToken::Answered(a)) => a,
    };
    if !answer.active {
        anyhow::bail!("VERIFIER_API_TOKEN is not an active token at the API");
    }
    if !answer.has_scope("verify") {
        anyhow::bail!(
            "VERIFIER_API_TOKEN lacks scope `verify` (its scope: `{}`)",
            answer.scope.as_deref().unwrap_or("")
        );
    }
    if answer.has_scope("platform") {
        return Ok(configured);
    }
    let tid = answer.tid.unwrap_or_else(|| "default".to_owned());
    let others: Vec<&str> = configured
        .iter()
        .map(String::as_str)
        .filter(|t| *t != tid)
        .collect();
    if !others.is_empty() {
        anyhow::bail!(
            "VERIFIER_TENANTS names `{}`, but VERIFIER_API_TOKEN is bound to tenant `{tid}` (it \
             has no scope `platform`, so the API tells this verifier only `{tid}`'s \
             revocations): use a token with scopes `verify platform`, or list only `{tid}`",
            others.join(",")
        );
    }
    Ok(vec![tid])
}

fn log_tenants(tenants: &[String], bound: bool) {
    if tenants.is_empty() {
        tracing::info!("tokens of every tenant are accepted");
    } else {
        tracing::info!(
            tenants = %tenants.join(","),
            bound_by_api_token = bound,
            "only tokens of these tenants are accepted"
        );
    }
}

/// Checks `VERIFIER_API_TOKEN` through the API and fixes the accepted tenants
/// ([`tenant_binding`]); retries with backoff while the API cannot answer.
async fn check_own_token(verifier: &Verifier, config: &Config) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    let own = loop {
        match verifier.api.introspect_own().await {
            Ok(own) => break own,
            Err(e) => tracing::warn!(error = %e, "checking VERIFIER_API_TOKEN failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    let platform = matches!(&own, Some(OwnToken::Answered(a)) if a.has_scope("platform"));
    let tenants = tenant_binding(&config.tenants, own)?;
    log_tenants(&tenants, !platform);
    verifier.accept_tenants(tenants);
    Ok(())
}

/// Learns the issuer (configured, or from discovery), checks the verifier's own API token
/// (unless the tenants were fixed already; a failure goes to `fail`), loads the JWK set, then
/// refreshes it periodically, and at once when the feed reports a revoked key (the API has a
/// new one). Retries with backoff while the API is unreachable.
async fn load_keys(
    verifier: Arc<Verifier>,
    config: Config,
    fail: tokio::sync::oneshot::Sender<anyhow::Error>,
) {
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
    if verifier.accepted_tenants().is_none()
        && let Err(e) = check_own_token(&verifier, &config).await
    {
        let _ = fail.send(e);
        return;
    }
    drop(fail);
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

#[cfg(test)]
mod tests {
    use super::*;
    use auth_protocol::Introspection;

    fn answer(tid: &str, scope: &str) -> Option<OwnToken> {
        Some(OwnToken::Answered(Box::new(Introspection::machine_token(
            "id", tid, scope, 1,
        ))))
    }

    fn list(t: &[&str]) -> Vec<String> {
        t.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn the_api_token_binds_the_verifier_to_its_tenant_unless_it_holds_platform() {
        let ok = |configured: &[&str], own| tenant_binding(&list(configured), own).unwrap();
        let err = |configured: &[&str], own| {
            tenant_binding(&list(configured), own)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(ok(&[], None), list(&[]), "no token: as configured");
        assert_eq!(ok(&["a", ""], None), list(&["a"]));
        assert_eq!(ok(&[], answer("default", "verify")), list(&["default"]));
        assert_eq!(ok(&["acme"], answer("acme", "verify")), list(&["acme"]));
        assert_eq!(ok(&[], answer("default", "platform verify")), list(&[]));
        assert_eq!(
            ok(&["acme", "beta"], answer("default", "verify platform")),
            list(&["acme", "beta"])
        );
        let e = err(&["default", "acme"], answer("default", "verify"));
        assert!(
            e.contains("VERIFIER_TENANTS") && e.contains("VERIFIER_API_TOKEN"),
            "{e}"
        );
        assert!(e.contains("`acme`") && e.contains("`default`"), "{e}");
        for own in [
            Some(OwnToken::Refused(401)),
            Some(OwnToken::Refused(403)),
            answer("default", "admin"),
            answer("default", "verifyx platform"),
            Some(OwnToken::Answered(Box::new(Introspection::inactive()))),
        ] {
            let e = err(&[], own);
            assert!(e.contains("VERIFIER_API_TOKEN"), "{e}");
        }
        assert!(err(&[], answer("default", "admin")).contains("verify"));
    }
}
