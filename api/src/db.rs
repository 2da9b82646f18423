//! The database: one sqlx `Any` pool over SQLite or PostgreSQL, connection settings per
//! backend, and the embedded migrations of each. Queries elsewhere are written once, with
//! `$n` placeholders and portable column types (TEXT ids, BIGINT milliseconds, TEXT JSON).

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr};

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

/// A pool and the backend it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    /// The connection pool.
    pub pool: AnyPool,
    /// The backend behind the pool.
    pub backend: Backend,
}

/// The migrations, embedded: (version, description, SQLite, PostgreSQL). A unit test checks
/// that this lists every file in `migrations/`.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "mail challenges limits",
        include_str!("../../migrations/sqlite/0002_mail_challenges_limits.sql"),
        include_str!("../../migrations/postgres/0002_mail_challenges_limits.sql"),
    ),
    (
        3,
        "configured roles, revocations by time",
        include_str!("../../migrations/sqlite/0003_configured_roles.sql"),
        include_str!("../../migrations/postgres/0003_configured_roles.sql"),
    ),
];

impl Db {
    /// Connect, creating the SQLite file if missing. SQLite runs in WAL mode with a busy
    /// timeout so readers never block the writer.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
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
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("cannot connect to DATABASE_URL")?;
        Ok(Self { pool, backend })
    }

    /// Apply the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, description, sqlite, postgres)| {
                let sql = match self.backend {
                    Backend::Sqlite => sqlite,
                    Backend::Postgres => postgres,
                };
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await
            .context("applying migrations failed")?;
        Ok(())
    }

    /// Whether the database answers; what `/readyz` reports.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn every_migration_file_is_embedded_for_both_databases() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        for (backend, column) in [("sqlite", 2), ("postgres", 3)] {
            let mut files: Vec<String> = std::fs::read_dir(root.join(backend))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.ends_with(".sql"))
                .collect();
            files.sort();
            assert_eq!(files.len(), MIGRATIONS.len(), "{backend}: {files:?}");
            for (file, migration) in files.iter().zip(MIGRATIONS) {
                let text = std::fs::read_to_string(root.join(backend).join(file)).unwrap();
                let embedded = if column == 2 {
                    migration.2
                } else {
                    migration.3
                };
                assert_eq!(text, embedded, "{backend}/{file} is not embedded in order");
                assert!(file.starts_with(&format!("{:04}_", migration.0)), "{file}");
            }
        }
    }
}
