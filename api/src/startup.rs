//! Building the application from a configuration, and serving it on a listener until a
//! shutdown future resolves, so tests can bind port 0 and stop the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::http::{AppState, router};
use crate::service::feed::Feed;
use crate::service::keys::KeyRing;
use crate::service::mail::Mailer;
use crate::service::{Auth, passwords};
use crate::store::Store;
use crate::store::{Backend, Db};

/// A built application: database migrated, default tenant and signing key in place.
pub struct App {
    /// Shared state of the handlers.
    pub state: AppState,
}

/// Connect, migrate, and prepare everything the service needs.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let db = Db::connect(&config.database_url, config.database_max_connections).await?;
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
    let config = Arc::new(config);
    let feed = Feed::new(store.clone());
    let mailer = Mailer::new(&config, store.clone(), master.clone())?;
    let auth = Auth::new(store, keys, feed, master, mailer, config.clone());
    let schema = crate::graphql::schema(Some(auth.clone()), config.introspection());
    passwords::warm_up();
    crate::http::metrics_handle();
    Ok(App {
        state: AppState {
            auth,
            schema,
            config,
        },
    })
}

/// Serve on `listener` until `shutdown` resolves; in-flight requests finish first.
pub async fn run(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = app.state;
    let feed = tokio::spawn(
        state
            .auth
            .feed()
            .clone()
            .run(state.config.database_url.clone(), state.auth.keys().clone()),
    );
    let janitor = tokio::spawn(janitor(state.clone()));
    let keys = tokio::spawn(reload_keys_periodically(state.auth.clone()));
    let mailer = tokio::spawn(state.auth.mailer().clone().run());
    let service = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    feed.abort();
    janitor.abort();
    keys.abort();
    mailer.abort();
    served.context("server failed")
}

/// Reloads this replica's signing keys every 30 seconds, so that a rotation by
/// `auth-api keys rotate` or another replica takes effect here. (A withdrawn key is acted on
/// at once: the feed poller reloads when it sees the `key` entry.)
async fn reload_keys_periodically(auth: Auth) {
    let mut tick = tokio::time::interval(crate::service::keys::RELOAD_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(error) = auth.keys().reload().await {
            tracing::error!(error = %error, "signing keys not reloaded");
        }
    }
}

/// Housekeeping every few minutes: expired sessions, spent successors, old revocations,
/// ended challenges and stale rate-limit counters.
async fn janitor(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tick.tick().await;
        let store = state.auth.store();
        if let Err(error) = store
            .purge_sessions(state.config.refresh_grace_seconds * 1000)
            .await
        {
            tracing::warn!(error = %error, "session purge failed");
        }
        if let Err(error) = store.purge_revocations().await {
            tracing::warn!(error = %error, "revocation purge failed");
        }
        let now = crate::domain::now_ms();
        if let Err(error) = store.purge_challenges(now).await {
            tracing::warn!(error = %error, "challenge purge failed");
        }
        if let Err(error) = store.purge_limits(now).await {
            tracing::warn!(error = %error, "rate-limit purge failed");
        }
        state.auth.keys().reload_if_stale().await;
    }
}

/// `AUTH_MASTER_KEY`, or for a SQLite file in development a key generated and kept beside
/// it (with a warning). PostgreSQL deployments must set it.
pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(key) = &config.master_key {
        return Ok(key.clone());
    }
    let (Backend::Sqlite, Some(db_path)) =
        (Backend::of(&config.database_url)?, config.sqlite_path())
    else {
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

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.ok();
    tracing::info!("shutting down: finishing in-flight requests");
}
