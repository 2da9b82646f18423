//! The service's life: opening it over a configuration (database connected and migrated,
//! default tenant, master key, signing keys, feed and mailer), its background workers (the
//! revocation poller, mail delivery, key reloads, housekeeping), readiness, and shutdown,
//! which every worker and every open stream hears.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use auth_protocol::JwkSet;
use tokio::task::JoinHandle;

use super::feed::Feed;
use super::keys::{KeyRing, RELOAD_EVERY};
use super::mail::Mailer;
use super::{Auth, events};
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::domain::now_ms;
use crate::store::{Db, Store};

/// Apply the migrations and nothing else (`auth-api migrate`).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    Db::connect(&config.database_url, 1).await?.migrate().await
}

/// The background tasks of a running service; [`Workers::stop`] waits for them.
#[derive(Debug)]
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Wait (at most `grace`) for every worker to end after [`Auth::shut_down`]; the ones
    /// still running then are aborted.
    pub async fn stop(self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// How long `/readyz` waits for the database: short of a second, whatever the pool's
/// acquire timeout, so that a load balancer's probe gets its answer in time.
pub(super) const READY_TIMEOUT: Duration = Duration::from_millis(800);

impl Auth {
    /// Open the service over `config`: connect and migrate the database, make sure the
    /// default tenant exists, load (or create) the signing keys, and set up the feed and
    /// the mailer.
    pub async fn open(config: Arc<Config>) -> anyhow::Result<Self> {
        let db = Db::connect_with(
            &config.database_url,
            config.database_max_connections,
            Duration::from_secs(config.database_acquire_timeout_seconds),
        )
        .await?;
        db.migrate().await?;
        let store = Store::new(db);
        store.ensure_default_tenant().await?;
        let master = master_key(&config)?;
        let keys = KeyRing::load(
            store.clone(),
            master.clone(),
            config.signing_key_file.as_deref(),
            config.access_ttl_seconds,
            &config.issuer,
            config.audience(),
        )
        .await?;
        let feed = Feed::new(store.clone());
        let mailer = Mailer::new(&config, store.clone(), master.clone())?;
        let (stopping, _) = tokio::sync::watch::channel(false);
        let oauth = super::oauth::OAuthRuntime::new(&config)?;
        let passkey_rp = super::passkeys::RelyingParty::new(&config)?;
        Ok(Self {
            store,
            keys,
            feed,
            master,
            mailer,
            oauth,
            passkey_rp,
            profiles: Arc::default(),
            subscriptions: Arc::new(events::Subscriptions::new(
                config.subscriptions_per_session,
                config.subscriptions_max,
            )),
            config,
            stopping,
            tenants: super::settings::TenantCache::new(),
            replica: Arc::from(uuid::Uuid::new_v4().to_string()),
        })
    }

    /// Start the background workers: the revocation poller, mail delivery, periodic key
    /// reloads and housekeeping. Each ends when [`Auth::shut_down`] is called.
    pub fn start_workers(&self) -> Workers {
        let until_stopped = |work: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
            let auth = self.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = work => {}
                    () = auth.stopped() => {}
                }
            })
        };
        let feed = self.feed.clone();
        let cache = self.tenants.clone();
        let tenant_listener = self.store.listen_tenant_changes(
            self.config.database_url.clone(),
            Arc::new(move |slug: Option<String>| cache.forget(slug.as_deref())),
        );
        let mut tasks = vec![
            until_stopped(Box::pin(
                feed.run(self.config.database_url.clone(), self.keys.clone()),
            )),
            until_stopped(Box::pin(self.mailer.clone().run())),
            until_stopped(Box::pin(self.clone().reload_keys_periodically())),
            // Ends by itself when stopped, giving its lease back on the way out.
            tokio::spawn(self.clone().housekeeping()),
        ];
        if let Some(listener) = tenant_listener {
            let auth = self.clone();
            tasks.push(tokio::spawn(async move {
                auth.stopped().await;
                listener.abort();
            }));
        }
        Workers { tasks }
    }

    /// Tell every worker and every open stream to end.
    pub fn shut_down(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Auth::shut_down`] has been called (at once if it has).
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        // An error means the sender is gone, which only happens when the service is.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// Whether the database answers within [`READY_TIMEOUT`]; what `/readyz` reports.
    pub async fn ready(&self) -> bool {
        self.store.db().ping(READY_TIMEOUT).await
    }

    /// The published JWK set (reloaded first if the last load is older than the reload
    /// interval, so another replica's rotation shows here too).
    pub async fn jwks(&self) -> Arc<JwkSet> {
        self.keys.reload_if_stale().await;
        self.keys.jwks()
    }

    /// Make a new signing key (`auth-api keys rotate`): published at once, signing after
    /// `prepublish`. Returns its kid.
    pub async fn rotate_signing_key(&self, prepublish: Duration) -> anyhow::Result<String> {
        Ok(KeyRing::rotate(&self.store, &self.master, prepublish)
            .await?
            .kid)
    }

    /// Withdraw a signing key at once (operator, `auth-api keys revoke`): it stops signing
    /// and is no longer published, and a `key` entry on the revocation feed makes verifiers
    /// and every API replica (whose feed poller reloads the keys) refuse what it signed. Returns the replacement's kid when the
    /// current key was withdrawn.
    pub async fn withdraw_signing_key(&self, kid: &str) -> anyhow::Result<Option<String>> {
        let horizon = self.revocation_horizon();
        let replacement = KeyRing::withdraw(&self.store, &self.master, kid, horizon).await?;
        self.feed.announce();
        Ok(replacement)
    }

    /// Every 30 seconds, reload this replica's signing keys, so that a rotation by `auth-api
    /// keys rotate` or another replica takes effect here. (A withdrawn key is acted on at
    /// once: the feed poller reloads when it sees the `key` entry.)
    async fn reload_keys_periodically(self) {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(error) = self.keys.reload().await {
                tracing::error!(error = %error, "signing keys not reloaded");
            }
        }
    }

    /// Every five minutes, a housekeeping round ([`Auth::housekeeping_round`]) if no other
    /// replica ran one in the last five minutes. Gives its lease back when stopped, so a
    /// replica started next runs a round at once.
    async fn housekeeping(self) {
        let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.stopped() => break,
            }
            tokio::select! {
                round = self.housekeeping_round() => match round {
                    Ok(Some(purged)) if purged.total() > 0 => {
                        tracing::info!(?purged, "housekeeping: rows purged");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(error = %error, "housekeeping lease not claimed"),
                },
                () = self.stopped() => break,
            }
            self.keys.reload_if_stale().await;
        }
        if let Err(error) = self.store.release_lease(HOUSEKEEPING, &self.replica).await {
            tracing::warn!(error = %error, "housekeeping lease not given back");
        }
    }

    /// One housekeeping round, if this replica can claim the round's lease (which runs
    /// until just before the next round is due, so of several replicas one runs it; one
    /// that dies holding it is replaced when it runs out): expired sessions, spent
    /// successors, old revocations, ended challenges (mail codes and links, pending second
    /// steps of sign-ins), stale rate-limit counters and failed
    /// sign-in counts, expired OAuth sign-in states, spent id_tokens past their expiry, and
    /// audit events past their tenant's retention. Each is deleted [`PURGE_BATCH`] rows per
    /// statement over an index, yielding between batches; a purge that fails is logged and
    /// the round goes on. `None` when another replica holds the lease.
    pub async fn housekeeping_round(&self) -> anyhow::Result<Option<Purged>> {
        let now = now_ms();
        let lease_ms = i64::try_from((HOUSEKEEPING_EVERY - LEASE_SLACK).as_millis())?;
        if !self
            .store
            .claim_lease(HOUSEKEEPING, &self.replica, now, now + lease_ms)
            .await?
        {
            return Ok(None);
        }
        let store = &self.store;
        let grace_ms = self.config.refresh_grace_seconds * 1000;
        let day_ago = now - 86_400_000;
        let purged = Purged {
            successors: drain("successor", |batch| {
                store.purge_successors(now - grace_ms, batch)
            })
            .await,
            expired_sessions: drain("expired session", |batch| {
                store.purge_expired_sessions(day_ago, batch)
            })
            .await,
            revoked_sessions: drain("revoked session", |batch| {
                store.purge_revoked_sessions(day_ago, batch)
            })
            .await,
            revocations: drain("revocation", |batch| store.purge_revocations(now, batch)).await,
            challenges: drain("challenge", |batch| store.purge_challenges(now, batch)).await,
            mfa_challenges: drain("mfa challenge", |batch| {
                store.purge_mfa_challenges(now, batch)
            })
            .await,
            passkey_challenges: drain("passkey challenge", |batch| {
                store.purge_ceremonies(now, batch)
            })
            .await,
            rate_limits: drain("rate-limit", |batch| store.purge_limits(now, batch)).await,
            sign_in_failures: drain("sign-in failure", |batch| {
                store.purge_sign_in_failures(now, batch)
            })
            .await,
            oauth_states: drain("OAuth state", |batch| store.purge_oauth_states(now, batch)).await,
            used_id_tokens: drain("used id_token", |batch| {
                store.purge_used_id_tokens(now, batch)
            })
            .await,
            audit_events: match self.purge_audit_events().await {
                Ok(purged) => purged,
                Err(error) => {
                    tracing::warn!(error = %error, "audit purge failed");
                    0
                }
            },
        };
        Ok(Some(purged))
    }
}

/// How often a housekeeping round is due.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(300);
/// A round's lease runs out this much before the next round is due, so the replica that
/// ran it (or any other) can claim the next one on time.
const LEASE_SLACK: Duration = Duration::from_secs(10);
/// The lease's name.
const HOUSEKEEPING: &str = "housekeeping";
/// Rows per purge statement: no statement holds its locks (or SQLite's one writer) long.
const PURGE_BATCH: i64 = 1000;

/// What a housekeeping round deleted (or, for successors, erased), by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Sealed successors forgotten after the grace window.
    pub successors: u64,
    /// Sessions deleted a day after they expired.
    pub expired_sessions: u64,
    /// Sessions deleted a day after they were revoked.
    pub revoked_sessions: u64,
    /// Revocation feed entries whose tokens have all expired.
    pub revocations: u64,
    /// Challenges ended more than a day ago.
    pub challenges: u64,
    /// Pending second steps of sign-ins expired more than a day ago.
    pub mfa_challenges: u64,
    /// Passkey ceremonies past their five minutes.
    pub passkey_challenges: u64,
    /// Rate-limit counters older than a day.
    pub rate_limits: u64,
    /// Failed sign-in counts older than a day.
    pub sign_in_failures: u64,
    /// Expired OAuth sign-ins in flight.
    pub oauth_states: u64,
    /// Spent id_tokens past their expiry.
    pub used_id_tokens: u64,
    /// Audit events past their tenant's retention.
    pub audit_events: u64,
}

impl Purged {
    /// Rows touched in all.
    pub fn total(&self) -> u64 {
        self.successors
            + self.expired_sessions
            + self.revoked_sessions
            + self.revocations
            + self.challenges
            + self.mfa_challenges
            + self.passkey_challenges
            + self.rate_limits
            + self.sign_in_failures
            + self.oauth_states
            + self.used_id_tokens
            + self.audit_events
    }
}

/// Run one purge [`PURGE_BATCH`] rows at a time until a batch comes back short, yielding
/// between batches; how many rows in all. A failure is logged and ends this purge.
async fn drain<F, Fut>(what: &str, mut batch: F) -> u64
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = crate::store::StoreResult<u64>>,
{
    let mut total = 0;
    loop {
        match batch(PURGE_BATCH).await {
            Ok(done) => {
                total += done;
                if done < PURGE_BATCH as u64 {
                    return total;
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, purge = what, "purge failed");
                return total;
            }
        }
        tokio::task::yield_now().await;
    }
}

/// `AUTH_MASTER_KEY`, or for a SQLite file in development a key generated and kept beside
/// it (with a warning). PostgreSQL deployments must set it.
fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(key) = &config.master_key {
        return Ok(key.clone());
    }
    let (true, Some(db_path)) = (config.is_sqlite(), config.sqlite_path()) else {
        anyhow::bail!(
            "AUTH_MASTER_KEY is required (32 bytes, base64) unless DATABASE_URL is a SQLite file"
        );
    };
    let mut path = db_path.into_os_string();
    path.push(".master-key");
    let path = std::path::PathBuf::from(path);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return MasterKey::parse(&text).map_err(|why| anyhow::anyhow!("{} {why}", path.display()));
    }
    let key = MasterKey::generate();
    write_private(&path, &key.to_base64())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(path = %path.display(), "AUTH_MASTER_KEY is not set: generated a development key beside the SQLite file; set AUTH_MASTER_KEY in production");
    Ok(key)
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
