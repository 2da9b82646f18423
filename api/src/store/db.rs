//! The database: one sqlx `Any` pool over SQLite or PostgreSQL, on SQLite the one
//! connection every write goes through ([`Db::writer`]), and the connection settings of each
//! backend. Queries elsewhere are written once, with `$n` placeholders and portable
//! column types (TEXT ids, BIGINT milliseconds, TEXT JSON); the migrations are in
//! [`super::migrations`].

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection as _, Executor, Transaction};
use tokio::sync::{Mutex, MutexGuard};

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

/// The pool, SQLite's write connection, and the backend they talk to.
#[derive(Debug, Clone)]
pub struct Db {
    /// The connection pool: every read, and every write on PostgreSQL.
    pub pool: AnyPool,
    /// SQLite's one write connection ([`Db::writer`]); `None` on PostgreSQL.
    exclusive: Option<Arc<Mutex<AnyConnection>>>,
    /// The backend behind the pool.
    pub backend: Backend,
}

/// A connection to write on, from [`Db::writer`]; dereferences to the connection (an
/// executor as `&mut *writer`) and begins transactions.
#[derive(Debug)]
pub enum Writer<'a> {
    /// PostgreSQL: any connection of the pool.
    Pooled(PoolConnection<Any>),
    /// SQLite: the process's one write connection, held until this is dropped.
    Exclusive(MutexGuard<'a, AnyConnection>),
}

impl Writer<'_> {
    /// A transaction on this connection.
    pub async fn begin(&mut self) -> Result<Transaction<'_, Any>, sqlx::Error> {
        (**self).begin().await
    }
}

impl Deref for Writer<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            Writer::Pooled(conn) => conn,
            Writer::Exclusive(conn) => conn,
        }
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Writer::Pooled(conn) => conn,
            Writer::Exclusive(conn) => conn,
        }
    }
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
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            // sqlx pings a connection when it takes it back and again before handing it out.
            // SQLite's connections live in this process, so nothing can end one between the
            // two: the second ping is a hop to its worker thread and back for nothing (two
            // context switches per statement). PostgreSQL's are checked: a restarted server
            // leaves dead connections in the pool that no request should be the one to find.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(sqlx::AssertSqlSafe(sqlite_pragmas(busy_timeout)))
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
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
        let exclusive = match backend {
            Backend::Sqlite => {
                let mut conn = AnyConnection::connect_with(&options)
                    .await
                    .context("cannot open the write connection")?;
                conn.execute(sqlx::AssertSqlSafe(sqlite_pragmas(busy_timeout)))
                    .await
                    .context("cannot set up the write connection")?;
                Some(Arc::new(Mutex::new(conn)))
            }
            Backend::Postgres => None,
        };
        Ok(Self {
            pool,
            exclusive,
            backend,
        })
    }

    /// A connection to write on. On PostgreSQL any connection of the pool: row locks let
    /// writers run side by side. SQLite lets one writer in at a time, and a connection that
    /// finds the lock taken sleeps in SQLite's busy handler (1, 2, 5, 10 … up to 100 ms
    /// between tries, however soon the lock is free): there every write of the process goes
    /// through one connection, and writers wait for it in turn (first come, first served)
    /// instead; the busy handler is left to other processes on the file. The connection is
    /// held for as long as the [`Writer`] lives: one statement, or one transaction. Waits at
    /// most the acquire timeout, as for a pooled connection.
    pub async fn writer(&self) -> Result<Writer<'_>, sqlx::Error> {
        match &self.exclusive {
            None => Ok(Writer::Pooled(self.pool.acquire().await?)),
            Some(conn) => {
                let within = self.pool.options().get_acquire_timeout();
                match tokio::time::timeout(within, conn.lock()).await {
                    Ok(guard) => Ok(Writer::Exclusive(guard)),
                    Err(_) => Err(sqlx::Error::PoolTimedOut),
                }
            }
        }
    }

    /// Whether the database answers within `within`; what `/readyz` reports. Its own short
    /// timeout, shorter than the pool's acquire timeout, so that a probe is answered promptly
    /// (not ready) while the database is down or every connection is taken.
    pub async fn ping(&self, within: Duration) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(tokio::time::timeout(within, ping).await, Ok(Ok(_)))
    }
}

/// A SQLite connection's settings. The busy timeout first: switching to WAL takes a lock
/// another connection (a second process on the file) may hold.
fn sqlite_pragmas(busy_timeout: Duration) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON;",
        busy_timeout.as_millis()
    )
}
