//! Writers side by side. SQLite lets one writer in at a time, and a connection that finds
//! the lock taken sleeps in SQLite's busy handler (1, 2, 5 … 100 ms between tries), which
//! gave the embedded default a p99 of 0.2–0.6 s for writes at 16–64 connections. There the
//! store writes through one connection of its own (`Db::writer`), and the process's writers
//! wait for it in turn instead. PostgreSQL runs the same writes side by side under row locks.

use std::time::Duration;

use auth_api::domain::{Email, now_ms};
use auth_api::store::limits::Bucket;
use auth_api::store::users::NewUser;
use auth_api::store::{Db, Store};

use crate::support::TestDb;

const WRITERS: usize = 64;

/// With SQLite's busy handler off, a writer that met another at SQLite's lock would fail at
/// once ("database is locked"). Sixty-four writers at once, single statements (rate
/// buckets, the upsert of every request) and transactions (sign-ups, several statements
/// each), through a store whose pool has eight connections for the reads: every one
/// succeeds and every write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_queue_in_the_process_and_never_meet_at_the_database_lock() {
    let db = TestDb::new().await;
    let opened = Db::open(&db.url, 8, Duration::from_secs(10), Duration::ZERO)
        .await
        .expect("connects");
    opened.migrate().await.expect("migrates");
    let store = Store::new(opened);
    store.ensure_default_tenant().await.expect("default tenant");
    let tenant = store
        .tenant_by_slug("default")
        .await
        .expect("the default tenant is there");

    let now = now_ms();
    let writers = (0..WRITERS).map(|i| {
        let (store, tenant_id) = (store.clone(), tenant.id.clone());
        tokio::spawn(async move {
            if i % 2 == 0 {
                let bucket = Bucket {
                    key: format!("writers:{}", i % 4),
                    max: 1_000,
                    window_ms: 60_000,
                };
                store.hit(&[bucket], now).await.map(|_| ())
            } else {
                let email = Email::parse(&format!("writer{i}@example.com")).expect("address");
                let new = NewUser {
                    email: &email,
                    verified: false,
                    password_hash: None,
                    name_display: Some(format!("Writer {i}")),
                    roles: vec![],
                    configured_roles: vec![],
                };
                store.create_user(&tenant_id, new).await.map(|_| ())
            }
        })
    });
    let mut failures = Vec::new();
    for writer in futures_util::future::join_all(writers).await {
        if let Err(error) = writer.expect("writer ran") {
            failures.push(error.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {WRITERS} writers failed: {:?}",
        failures.len(),
        failures.first()
    );

    let users = store
        .count_users(&tenant.id, None)
        .await
        .expect("counts users");
    assert_eq!(users, (WRITERS / 2) as i64, "every sign-up is there");
    let hits: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(hits), 0) AS BIGINT) FROM rate_limits \
         WHERE bucket LIKE 'writers:%'",
    )
    .fetch_one(store.pool())
    .await
    .expect("reads the buckets");
    assert_eq!(hits, (WRITERS / 2) as i64, "every hit is counted");
}
