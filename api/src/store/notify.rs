//! Replicas telling each other that revocations were committed: PostgreSQL `LISTEN` /
//! `NOTIFY` on one channel; on SQLite (one process) there is no one else to tell, and the
//! feed's own wake-up is all there is. Every database difference of the feed lives here.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Store;
use super::db::Backend;

/// The PostgreSQL channel replicas notify each other on. A trigger on `revocations`
/// notifies it (migration 0012, `store::migrations`), with the commit of whatever wrote the
/// entries.
const CHANNEL: &str = "auth_revocations";
/// The payload of a notification whose commit wrote only `session_created` entries
/// (migration 0013); any other commit notifies with an empty one.
const ONLY_CREATED: &str = "session_created";
/// The channel on which a replica says that a tenant (named by its slug) changed.
const TENANTS: &str = "auth_tenants";

impl Store {
    /// Tell the other replicas that the tenant `slug` changed (settings, or deleted). A lost
    /// notification leaves their cached copy until it expires, so a failure is logged.
    pub async fn notify_tenant_changed(&self, slug: &str) {
        if self.db().backend != Backend::Postgres {
            return;
        }
        let notified = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(TENANTS)
            .bind(slug)
            .execute(self.pool())
            .await;
        if let Err(error) = notified {
            tracing::warn!(error = %error, "tenant notify failed");
        }
    }

    /// Call `changed` with a slug whenever another replica says that tenant changed, and
    /// with `None` after every (re)connect of the listener, when notifications may have
    /// been missed; `None` on SQLite, where there are no other replicas.
    pub fn listen_tenant_changes(
        &self,
        database_url: String,
        changed: Arc<dyn Fn(Option<String>) + Send + Sync>,
    ) -> Option<JoinHandle<()>> {
        (self.db().backend == Backend::Postgres).then(|| {
            tokio::spawn(async move {
                loop {
                    let mut listener =
                        match sqlx::postgres::PgListener::connect(&database_url).await {
                            Ok(listener) => listener,
                            Err(error) => {
                                tracing::warn!(error = %error, "tenant listener cannot connect");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                continue;
                            }
                        };
                    if let Err(error) = listener.listen(TENANTS).await {
                        tracing::warn!(error = %error, "LISTEN failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    changed(None);
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(notification)) => {
                                changed(Some(notification.payload().to_owned()));
                            }
                            Ok(None) => {
                                listener.listen(TENANTS).await.ok();
                                changed(None);
                            }
                            Err(error) => {
                                tracing::warn!(error = %error, "tenant listener failed");
                                break;
                            }
                        }
                    }
                }
            })
        })
    }

    /// Wake `wake` whenever another replica commits revocations (and after every reconnect
    /// of the listener, when notifications may have been missed), and when it commits only
    /// new sessions if `follows_sessions` says someone here follows those; `None` on
    /// SQLite, where there are no other replicas.
    pub fn listen_revocations(
        &self,
        database_url: String,
        wake: Arc<Notify>,
        follows_sessions: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> Option<JoinHandle<()>> {
        (self.db().backend == Backend::Postgres)
            .then(|| spawn_listener(database_url, wake, follows_sessions))
    }
}

/// Listen for other replicas' notifications and wake the poller. sqlx reconnects the
/// listener by itself; `try_recv` returning `None` marks a reconnect, after which the poller
/// is woken to reload what may have been missed.
fn spawn_listener(
    database_url: String,
    wake: Arc<Notify>,
    follows_sessions: Arc<dyn Fn() -> bool + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect(&database_url).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(error = %error, "revocation listener cannot connect");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if let Err(error) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %error, "LISTEN failed");
                tokio::time::sleep(backoff).await;
                continue;
            }
            backoff = Duration::from_millis(100);
            // LISTEN is in place: reload anything committed while we were not listening.
            wake.notify_one();
            loop {
                match listener.try_recv().await {
                    Ok(Some(note)) => {
                        if note.payload() != ONLY_CREATED || follows_sessions() {
                            wake.notify_one();
                        }
                    }
                    Ok(None) => {
                        tracing::warn!("revocation listener reconnecting");
                        listener.listen(CHANNEL).await.ok();
                        wake.notify_one();
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "revocation listener failed");
                        break;
                    }
                }
            }
        }
    })
}
