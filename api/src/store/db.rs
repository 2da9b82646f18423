//! The database: one sqlx `Any` pool over SQLite or PostgreSQL and the connection settings
//! of each backend. Queries elsewhere are written once, with `$n` placeholders and portable
//! column types (TEXT ids, BIGINT milliseconds, TEXT JSON); the migrations are in
//! [`super::migrations`].

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// How long a caller waits for a pooled connection unless configured otherwise
/// (`DATABASE_ACQUIRE_TIMEOUT_SECONDS`).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long start-up keeps trying to open the first connection.
const STARTUP_PATIENCE: Duration = Duration::from_secs(30);

/// Which database the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Production, and the way to scale out.
    Postgres,
}

impl Backend {
    /// The backend a `DATABASE_URL` names.
    pub fn of(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres:")
        }
    }
}

/// How long a SQLite connection waits for a write lock another process holds (a command
/// of `auth-api` run beside the server on the same file) before giving up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The pools and the backend they talk to.
#[derive(Debug, Clone)]
pub struct Db {
    /// The connection pool: every read, and anything that runs no write.
    pub pool: AnyPool,
    /// Where the store's writes go. On PostgreSQL this is [`Db::pool`] itself (row locks let
    /// writers run side by side). SQLite lets one writer in at a time and makes the others
    /// sleep in its busy handler (1, 2, 5, 10 … up to 100 ms between tries, however soon
    /// the lock is free), so there it is a pool of one connection: the process's writers
    /// queue for that connection in order, and the busy handler is left to other processes.
    pub writer: AnyPool,
    /// The backend behind the pools.
    pub backend: Backend,
}

impl Db {
    /// [`Db::connect_with`] with the default acquire timeout.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        Self::connect_with(url, max_connections, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// Connect, creating the SQLite file if missing. SQLite runs in WAL mode so readers never
    /// block the writer, with [`DEFAULT_BUSY_TIMEOUT`]. A caller waits at most
    /// `acquire_timeout` for a connection (`DATABASE_ACQUIRE_TIMEOUT_SECONDS`): with the
    /// database down, that is how long a request takes to fail.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Self> {
        Self::open(url, max_connections, acquire_timeout, DEFAULT_BUSY_TIMEOUT).await
    }

    /// [`Db::connect_with`] with SQLite's busy timeout as given (tests turn it off to see
    /// whether two of the process's writers ever meet at SQLite's lock).
    pub async fn open(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
        busy_timeout: Duration,
    ) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).context("DATABASE_URL is malformed")?;
        let pools = |max_connections: u32| {
            AnyPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(acquire_timeout)
                // sqlx pings a connection when it takes it back and again before handing it
                // out. SQLite's connections live in this process, so nothing can end one
                // between the two: the second ping is a hop to its worker thread and back
                // for nothing (two context switches per statement). PostgreSQL's are
                // checked: a restarted server leaves dead connections in the pool that no
                // request should be the one to find.
                .test_before_acquire(backend == Backend::Postgres)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // The busy timeout first: switching to WAL takes a lock another
                            // connection (a second process on the file) may hold.
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                                busy_timeout.as_millis()
                            )))
                            .await?;
                        }
                        Ok(())
                    })
                })
                .connect_lazy_with(options.clone())
        };
        let pool = pools(max_connections);
        let writer = match backend {
            Backend::Sqlite => pools(1),
            Backend::Postgres => pool.clone(),
        };
        // The first connection gets longer than a request would: a database still starting,
        // or a new SQLite file on a disk busy with fsyncs, should not stop start-up.
        let deadline = Instant::now() + STARTUP_PATIENCE.max(acquire_timeout);
        loop {
            match pool.acquire().await {
                Ok(_) => break,
                Err(sqlx::Error::PoolTimedOut) if Instant::now() < deadline => {
                    tracing::warn!("database not reachable yet; still trying");
                }
                Err(error) => return Err(error).context("cannot connect to DATABASE_URL"),
            }
        }
        Ok(Self {
            pool,
            writer,
            backend,
        })
    }

    /// Whether the database answers within `within`; what `/readyz` reports. Its own short
    /// timeout, shorter than the pool's acquire timeout, so that a probe is answered promptly
    /// (not ready) while the database is down or every connection is taken.
    pub async fn ping(&self, within: Duration) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(tokio::time::timeout(within, ping).await, Ok(Ok(_)))
    }
}
