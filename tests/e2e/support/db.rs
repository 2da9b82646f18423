//! `TestDb`: a fresh database for one test, a new SQLite file or, when `TEST_DATABASE_URL` is
//! set, a new PostgreSQL database on that server, dropped (with its temp dir) afterwards.

use std::path::{Path, PathBuf};

use sqlx::Connection;

/// A fresh database for one test, and a temp dir that lives as long as it.
pub(crate) struct TestDb {
    /// Its URL.
    pub(crate) url: String,
    dir: PathBuf,
    /// The server's URL and the database's name, on PostgreSQL.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A new empty database.
    pub(crate) async fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("auth-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => {
                let name = format!("auth_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&base)
                    .await
                    .expect("TEST_DATABASE_URL reachable");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let (prefix, _) = base
                    .rsplit_once('/')
                    .expect("TEST_DATABASE_URL names a database");
                Self {
                    url: format!("{prefix}/{name}"),
                    dir,
                    postgres: Some((base, name)),
                }
            }
            _ => Self {
                url: format!("sqlite://{}", dir.join("auth.db").display()),
                dir,
                postgres: None,
            },
        }
    }

    /// Whether this is PostgreSQL.
    pub(crate) fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// On PostgreSQL, cut the database off (`reachable` false: new connections refused,
    /// open ones terminated, as when the server goes down) or let it be reached again.
    /// Returns false on SQLite, which cannot be cut off this way.
    pub(crate) async fn set_reachable(&self, reachable: bool) -> bool {
        let Some((base, name)) = &self.postgres else {
            return false;
        };
        let mut conn = sqlx::PgConnection::connect(base)
            .await
            .expect("TEST_DATABASE_URL reachable");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS {reachable}"
        )))
        .execute(&mut conn)
        .await
        .expect("alter database");
        if !reachable {
            self.end_connections().await;
        }
        true
    }

    /// Terminate every server process connected to the database, as a server restart does
    /// (PostgreSQL; `false` on SQLite).
    pub(crate) async fn end_connections(&self) -> bool {
        let Some((base, name)) = &self.postgres else {
            return false;
        };
        let mut conn = sqlx::PgConnection::connect(base)
            .await
            .expect("TEST_DATABASE_URL reachable");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut conn)
            .await
            .expect("terminate connections");
        true
    }

    /// A directory that lives as long as the database.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A handle on the same database that owns nothing (for a second app, a replica, on it).
    pub(crate) fn share(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            dir: PathBuf::new(),
            postgres: None,
        }
    }

    /// Moves the database out of `self`, leaving a stand-in that owns nothing (for an app
    /// that stops and hands its database to the next one).
    pub(crate) fn take(&mut self) -> TestDb {
        let none = TestDb {
            url: String::new(),
            dir: PathBuf::new(),
            postgres: None,
        };
        std::mem::replace(self, none)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if let Some((base, name)) = self.postgres.take() {
            // Drop runs outside any runtime we may block on: use a thread of our own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}
