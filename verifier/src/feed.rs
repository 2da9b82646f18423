//! The revocation feed follower: loads `GET /internal/revocations`, then follows
//! `GET /internal/revocations/stream` from the list's cursor (`Last-Event-ID`), so nothing falls
//! between the two. On any disconnect it reconnects with backoff and reloads the list first
//! (the API's PostgreSQL listener may have missed notifications meanwhile); on `event: reset` it
//! reloads the list in place. [`FeedState`] tells checks and `/readyz` whether the list can be
//! trusted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth_protocol::RevocationEntry;
use futures_util::StreamExt;

use crate::client::ApiClient;
use crate::error::Error;
use crate::revocation::RevocationSet;
use crate::sse::{Item, Parser};

/// A stream that sends nothing (not even the 5-second ping) for this long is treated as dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

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

    /// A feed connected and current, as if it had just synced (for tests of the checks).
    #[cfg(test)]
    pub(crate) fn synced(limit: Duration) -> Self {
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
    let mut backoff = BACKOFF_MIN;
    loop {
        match session(&api, &set, &state).await {
            Ok(()) => tracing::warn!("revocation stream ended; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "revocation feed failed; reconnecting"),
        }
        let was_connected = state.connected();
        state.set_connected(false);
        metrics::counter!("verifier_feed_reconnects_total").increment(1);
        if was_connected {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    d + Duration::from_millis(nanos % (d.as_millis() as u64 / 4 + 1))
}

/// One connection: reload the list, open the stream after its cursor, apply events.
async fn session(api: &ApiClient, set: &RevocationSet, state: &FeedState) -> Result<(), Error> {
    reload(api, set).await?;
    let resp = api.stream(set.cursor()).await?;
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
        let chunk = match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
            Err(_) => return Err(Error::Upstream("revocation stream idle".into())),
            Ok(None) => return Ok(()),
            Ok(Some(chunk)) => chunk?,
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

async fn reload(api: &ApiClient, set: &RevocationSet) -> Result<(), Error> {
    let list = api.revocations().await?;
    set.replace(list);
    Ok(())
}
