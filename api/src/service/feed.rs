//! The revocation feed on the API side: entries are written to the `revocations` table and
//! fanned out to every subscriber: the SSE streams verifiers follow (revocations only) and
//! the `sessionEvents` subscriptions (revocations and `session_created` entries, with the
//! user each session belongs to).
//!
//! Every replica runs one poller that reads new entries from the database and broadcasts
//! them. It wakes when this process publishes, when PostgreSQL `NOTIFY auth_revocations`
//! says another replica did, and once a second regardless. The database is the source of
//! truth, so a notification lost while the listener reconnected only delays an entry until
//! the next tick; after a reconnect the poller reloads from the database before it trusts
//! notifications again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use auth_protocol::{RevocationEntry, RevocationKind};
use futures_util::FutureExt as _;
use tokio::sync::{Notify, broadcast};

use super::keys::KeyRing;
use crate::domain::{Millis, now_ms};
use crate::store::Store;
pub use crate::store::revocations::FeedItem;

/// How often the poller looks at the database without being woken.
const TICK: Duration = Duration::from_secs(1);
/// How long a woken poller waits before it reads, gathering the wake-ups that come
/// together into one read: this replica's own and the `NOTIFY` of the same commit, and a
/// burst of sign-ins (each writes an entry). Without it a sign-in cost two reads of the feed.
const GATHER: Duration = Duration::from_millis(2);
/// How far back every read of the feed looks, whatever the seq it resumes after: longer
/// than any revocation transaction takes between taking its seq and committing.
pub const LOOKBACK: Duration = Duration::from_secs(30);

/// Publishes revocations and hands out subscriptions to them.
#[derive(Clone, Debug)]
pub struct Feed {
    store: Store,
    wake: Arc<Notify>,
    events: broadcast::Sender<RevocationEntry>,
    items: broadcast::Sender<Arc<FeedItem>>,
    /// The poller's low-water mark, for readers of the feed ([`Feed::complete_to`]).
    complete: Arc<AtomicI64>,
}

impl Feed {
    /// A feed over `store`; call [`Feed::run`] to start fanning out.
    pub fn new(store: Store) -> Self {
        let (events, _) = broadcast::channel(4096);
        let (items, _) = broadcast::channel(4096);
        Self {
            store,
            wake: Arc::new(Notify::new()),
            events,
            items,
            complete: Arc::new(AtomicI64::new(0)),
        }
    }

    /// The poller's low-water mark: every seq up to it has committed (this poller passed it
    /// on) or never will (a gap older than the look-back). A list read after this is taken
    /// holds every entry up to it, so a stream resuming from that list need look back only
    /// past it. A fact of the database, not of this replica: any replica may use another's.
    /// 0 until the poller has caught up once.
    pub fn complete_to(&self) -> i64 {
        self.complete.load(Ordering::Acquire)
    }

    /// Tell this replica's poller that entries were committed (the store writes them in the
    /// transaction of the revocation itself). The other replicas' pollers hear of them from
    /// PostgreSQL `NOTIFY`, which a trigger sends with the commit (migration 0012). A lost
    /// wake-up only delays an entry until the next tick.
    pub fn announce(&self) {
        self.wake.notify_one();
    }

    /// Tell this replica's poller that a session was created: only a `sessionEvents`
    /// subscriber follows those, so with none on this replica the entry waits for the next
    /// tick (which passes it on to nobody anyway) instead of costing every sign-in a read of
    /// the feed. The other replicas decide alike on the trigger's `NOTIFY` (its payload
    /// says when a commit wrote only `session_created` entries, migration 0013).
    pub fn announce_session_created(&self) {
        if self.follows_sessions() {
            self.wake.notify_one();
        }
    }

    /// Whether anyone on this replica follows `session_created` entries.
    fn follows_sessions(&self) -> bool {
        self.items.receiver_count() > 0
    }

    /// New revocation entries as this replica learns of them. A lagging receiver must reload.
    pub fn subscribe(&self) -> broadcast::Receiver<RevocationEntry> {
        self.events.subscribe()
    }

    /// Every new entry, `session_created` ones included, with its user and time: what the
    /// `sessionEvents` subscriptions follow. A lagging receiver must look at the database.
    pub fn subscribe_items(&self) -> broadcast::Receiver<Arc<FeedItem>> {
        self.items.subscribe()
    }

    /// The poller; runs until the process ends. On a `key` entry it reloads `keys` before
    /// passing the entry on, so that a verifier that hears of it and fetches the JWK set
    /// from this replica gets the set without the withdrawn key and with its replacement.
    pub async fn run(self, database_url: String, keys: KeyRing) {
        let mut cursor = match self.store.revocation_cursor().await {
            Ok(cursor) => cursor,
            Err(error) => {
                tracing::error!(error = %error, "revocation cursor unavailable; starting from 0");
                0
            }
        };
        // Out-of-order commits on PostgreSQL can make a smaller seq appear after a larger one:
        // every poll re-reads what was written in the last LOOKBACK whatever its seq, and
        // passes on only the seqs it has not passed on before. `complete_to` keeps that
        // re-read small: every seq up to it has been passed on (or, a gap, is older than the
        // look-back and so will never commit), so the look-back starts after it. With every
        // sign-in writing an entry, re-reading the whole window made each poll read thousands
        // of rows.
        let mut seen: BTreeMap<i64, Millis> = BTreeMap::new();
        let mut complete_to: i64 = 0;
        let feed = self.clone();
        let listener = self.store.listen_revocations(
            database_url,
            self.wake.clone(),
            Arc::new(move || feed.follows_sessions()),
        );
        loop {
            let from = now_ms() - LOOKBACK.as_millis() as Millis;
            match self.store.feed_since(cursor, from, complete_to).await {
                Ok(items) => {
                    for item in items {
                        let entry = &item.entry;
                        if entry.seq > complete_to && seen.insert(entry.seq, item.at).is_none() {
                            cursor = cursor.max(entry.seq);
                            if entry.kind == RevocationKind::Key
                                && let Err(error) = keys.reload().await
                            {
                                tracing::error!(error = %error, "signing keys not reloaded after a key revocation");
                            }
                            if entry.kind != RevocationKind::SessionCreated {
                                tracing::info!(seq = entry.seq, kind = ?entry.kind, "revocation passed on");
                                let _ = self.events.send(entry.clone());
                            }
                            let _ = self.items.send(Arc::new(item));
                        }
                    }
                    complete_to = advance(complete_to, &mut seen, from);
                    self.complete.store(complete_to, Ordering::Release);
                }
                Err(error) => crate::telemetry::failure("revocation poll failed", &error),
            }
            if tokio::time::timeout(TICK, self.wake.notified())
                .await
                .is_ok()
            {
                tokio::time::sleep(GATHER).await;
                // A wake-up of the gathering time is answered by the read that follows.
                let _ = self.wake.notified().now_or_never();
            }
            if listener.as_ref().is_some_and(|l| l.is_finished()) {
                tracing::error!("revocation listener ended; polling only");
            }
        }
    }
}

/// Move `complete_to` over the seqs passed on right after it (forgetting them: no read
/// returns them again), and over a gap once the first seq seen after it was written before
/// `from`: a seq in the gap was taken earlier still, so its transaction would have committed
/// within the look-back or never.
fn advance(mut complete_to: i64, seen: &mut BTreeMap<i64, Millis>, from: Millis) -> i64 {
    while let Some((&seq, &at)) = seen.first_key_value() {
        if seq != complete_to + 1 && at >= from {
            break;
        }
        seen.pop_first();
        complete_to = seq;
    }
    complete_to
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_complete_mark_waits_for_a_gap_until_it_is_older_than_the_look_back() {
        let mut seen = BTreeMap::from([(1, 100), (2, 100), (4, 100), (5, 100)]);
        // 3 is missing and the entries after it are recent: wait for it.
        assert_eq!(advance(0, &mut seen, 50), 2);
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [4, 5]);
        // 3 commits late: the mark moves over it and what follows.
        seen.insert(3, 100);
        assert_eq!(advance(2, &mut seen, 50), 5);
        assert!(seen.is_empty());
        // A gap (6) whose next entry is older than the look-back never fills: skip it.
        seen.insert(7, 100);
        assert_eq!(advance(5, &mut seen, 50), 5);
        assert_eq!(advance(5, &mut seen, 150), 7);
    }
}
