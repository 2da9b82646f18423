//! The revocation feed follower: loads `GET /internal/revocations`, then follows
//! `GET /internal/revocations/stream` from the list's cursor (`Last-Event-ID`), so nothing falls
//! between the two, and from the list's low-water mark (`complete`), so the stream's look-back
//! for late commits starts there rather than re-reading every entry of its 30-second window.
//! On any disconnect it reconnects and reloads the list first (the API's PostgreSQL listener
//! may have missed notifications meanwhile): soon after a stream that was live ends (50-100
//! ms, jittered, so that verifiers do not all come back at once), and with a backoff doubling
//! to at most 0.8 s while attempts keep failing, so that an API that is back is found within a
//! second. On `event: reset` it reloads the list in place. [`FeedState`] tells checks and
//! `/readyz` whether the list can be trusted: live, degraded (disconnected, within the
//! staleness limit: still ready), or stale.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth_protocol::RevocationEntry;
use futures_util::StreamExt;

use crate::client::ApiClient;
use crate::error::Error;
use crate::revocation::RevocationSet;
use crate::sse::{Item, Parser};

/// A stream that sends nothing (not even the 5-second ping) for this long is treated as dead:
/// two pings missed, and some slack.
const IDLE_TIMEOUT: Duration = Duration::from_secs(12);
/// The first retry after a stream that was live ends (jittered up to twice this).
const RETRY_SOON: Duration = Duration::from_millis(50);
/// Longest wait between two attempts while they keep failing (jittered down to half).
const BACKOFF_MAX: Duration = Duration::from_millis(800);

/// Liveness of the feed, read on every check.
#[derive(Debug)]
pub struct FeedState {
    epoch: Instant,
    connected: AtomicBool,
    /// Milliseconds since `epoch` at which the list was last known current; 0 = never.
    alive_ms: AtomicU64,
    limit: Duration,
}

impl FeedState {
    /// A feed that has not synced yet and tolerates `limit` of silence.
    pub fn new(limit: Duration) -> Self {
        FeedState {
            epoch: Instant::now(),
            connected: AtomicBool::new(false),
            alive_ms: AtomicU64::new(0),
            limit,
        }
    }

    /// A feed connected and current, as if it had just synced (for tests of the checks and
    /// the fuzzer, which check tokens without an API to follow).
    pub fn synced(limit: Duration) -> Self {
        let state = FeedState::new(limit);
        state.set_connected(true);
        state.touch();
        state
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.alive_ms.store(ms.max(1), Ordering::Relaxed);
    }

    fn set_connected(&self, c: bool) {
        self.connected.store(c, Ordering::Relaxed);
        metrics::gauge!("verifier_feed_connected").set(if c { 1.0 } else { 0.0 });
    }

    /// Whether the stream is connected now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Time since the list was last known current; `None` if it never was.
    pub fn lag(&self) -> Option<Duration> {
        match self.alive_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }

    /// Whether the list was current once and the stream is down now, within the staleness
    /// limit: tokens are still checked (and `/readyz` still ready), against a list that may
    /// miss the newest revocations.
    pub fn degraded(&self) -> bool {
        !self.connected() && self.alive_ms.load(Ordering::Relaxed) != 0 && !self.stale()
    }

    /// Whether checks must refuse tokens: never synced, or disconnected for longer than the
    /// staleness limit.
    pub fn stale(&self) -> bool {
        // Connected and synced once: not stale, without reading the clock (hot path).
        if self.connected() && self.alive_ms.load(Ordering::Relaxed) != 0 {
            return false;
        }
        match self.lag() {
            None => true,
            Some(lag) => !self.connected() && lag > self.limit,
        }
    }
}

/// Follows the feed for ever, keeping `set` and `state` current.
pub async fn follow(api: ApiClient, set: Arc<RevocationSet>, state: Arc<FeedState>) {
    let mut backoff = RETRY_SOON;
    let mut seed = seed();
    // Failed attempts since the stream was last live: the first is logged, then one in 20
    // (about every 16 s), not every 0.8 s while the API is away.
    let mut failures: u64 = 0;
    loop {
        let started = Instant::now();
        let outcome = session(&api, &set, &state).await;
        let was_connected = state.connected();
        if was_connected {
            failures = 0;
        }
        match outcome {
            Ok(()) => tracing::warn!("revocation stream ended; reconnecting"),
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, failures, "revocation feed failed; reconnecting");
                } else {
                    tracing::debug!(error = %e, failures, "revocation feed failed; reconnecting");
                }
            }
        }
        state.set_connected(false);
        metrics::counter!("verifier_feed_reconnects_total").increment(1);
        // A stream that was live (and did not end at once) is worth retrying at once: the API
        // closes streams cleanly when it restarts or a replica goes. Backoff is for attempts
        // that keep failing.
        if was_connected && started.elapsed() > BACKOFF_MAX {
            backoff = RETRY_SOON;
        }
        let wait = jitter(backoff, &mut seed);
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A seed for the jitter that differs between processes started together.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}

/// `d` jittered: for [`RETRY_SOON`] between it and twice it, otherwise between half of `d`
/// and `d` (so the longest wait stays [`BACKOFF_MAX`]).
fn jitter(d: Duration, seed: &mut u64) -> Duration {
    // xorshift64: enough to spread verifiers apart.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let fraction = (*seed % 1024) as u32;
    if d <= RETRY_SOON {
        d + d * fraction / 1024
    } else {
        d / 2 + (d / 2) * fraction / 1024
    }
}

/// One connection: reload the list, open the stream after its cursor, apply events.
async fn session(api: &ApiClient, set: &RevocationSet, state: &FeedState) -> Result<(), Error> {
    let complete = reload(api, set).await?;
    let resp = api.stream(set.cursor(), complete).await?;
    state.set_connected(true);
    state.touch();
    tracing::info!(
        cursor = set.cursor(),
        entries = set.len(),
        "revocation feed live"
    );
    let mut body = resp.bytes_stream();
    let mut parser = Parser::default();
    loop {
        // A stream that ends or breaks was current until now (the API closed it, or its
        // process went and the kernel said so): the staleness limit counts from here. One
        // that falls silent (a partition: nothing says it ended) counts from its last data.
        let chunk = match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
            Err(_) => return Err(Error::Upstream("revocation stream idle".into())),
            Ok(None) => {
                state.touch();
                return Ok(());
            }
            Ok(Some(Err(e))) => {
                state.touch();
                return Err(e.into());
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        for item in parser.push(&chunk) {
            let Item::Event(ev) = item else { continue };
            match ev.event.as_str() {
                "revocation" => match serde_json::from_str::<RevocationEntry>(&ev.data) {
                    Ok(entry) => {
                        tracing::info!(seq = entry.seq, kind = ?entry.kind, "revocation received");
                        set.apply(entry);
                        metrics::counter!("verifier_feed_events_total").increment(1);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable revocation event; reloading");
                        reload(api, set).await?;
                    }
                },
                "reset" => {
                    tracing::info!("feed reset by the API; reloading the list");
                    reload(api, set).await?;
                }
                other => tracing::debug!(event = other, "ignoring feed event"),
            }
        }
        state.touch();
    }
}

/// Replaces the set with the API's list; returns the list's low-water mark.
async fn reload(api: &ApiClient, set: &RevocationSet) -> Result<i64, Error> {
    let list = api.revocations().await?;
    let complete = list.complete_to;
    set.replace(list);
    Ok(complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_soon_after_a_live_stream_and_never_longer_than_the_cap() {
        let mut seed = seed();
        let mut backoff = RETRY_SOON;
        let mut waits = Vec::new();
        for _ in 0..12 {
            waits.push(jitter(backoff, &mut seed));
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        assert!(
            waits[0] >= RETRY_SOON && waits[0] <= RETRY_SOON * 2,
            "{waits:?}"
        );
        assert!(waits.iter().all(|w| *w <= BACKOFF_MAX), "{waits:?}");
        assert!(waits[11] >= BACKOFF_MAX / 2, "{waits:?}");
        // Two verifiers started together do not retry in step.
        let mut other = seed.wrapping_mul(31) | 1;
        let a: Vec<_> = (0..8).map(|_| jitter(BACKOFF_MAX, &mut seed)).collect();
        let b: Vec<_> = (0..8).map(|_| jitter(BACKOFF_MAX, &mut other)).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn a_dropped_feed_is_degraded_then_stale_past_the_limit() {
        let state = FeedState::new(Duration::from_millis(200));
        assert!(state.stale() && !state.degraded(), "never synced");
        state.set_connected(true);
        state.touch();
        assert!(!state.stale() && !state.degraded());
        state.set_connected(false);
        assert!(!state.stale() && state.degraded(), "within the limit");
        std::thread::sleep(Duration::from_millis(250));
        assert!(state.stale() && !state.degraded(), "past the limit");
    }
}
