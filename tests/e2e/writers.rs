//! Writers side by side. SQLite lets one writer in at a time, and a connection that finds
//! the lock taken sleeps in SQLite's busy handler (1, 2, 5 … 100 ms between tries), which
//! gave the embedded default a p99 of 0.2–0.6 s for writes at 16–64 connections. There the
//! store writes through one connection of its own (`Db::writer`), and the process's writers
//! wait for it in turn instead. PostgreSQL runs the same writes side by side under row locks.

use std::time::{Duration, Instant};

use auth_api::domain::{Email, Tenant, now_ms};
use auth_api::store::limits::Bucket;
use auth_api::store::users::NewUser;
use auth_api::store::{Db, Store, StoreResult};

use crate::support::TestDb;

const WRITERS: usize = 64;

/// A fresh database and a store over it with eight pooled connections and SQLite's busy
/// handler off, so that two writers meeting at SQLite's lock would fail at once.
async fn store_without_busy_wait() -> (TestDb, Store, Tenant) {
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
    (db, store, tenant)
}

/// A sign-up's write: the user and its address, one transaction.
async fn sign_up(store: &Store, tenant_id: &str, i: usize) -> StoreResult<()> {
    let email = Email::parse(&format!("writer{i}@example.com")).expect("address");
    let new = NewUser {
        email: &email,
        verified: false,
        password_hash: None,
        name_display: Some(format!("Writer {i}")),
        roles: vec![],
        configured_roles: vec![],
    };
    store.create_user(tenant_id, new).await.map(|_| ())
}

/// With SQLite's busy handler off, a writer that met another at SQLite's lock would fail at
/// once ("database is locked"). Sixty-four writers at once, single statements (rate
/// buckets, the upsert of every request) and transactions (sign-ups, several statements
/// each), through a store whose pool has eight connections for the reads: every one
/// succeeds and every write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_queue_in_the_process_and_never_meet_at_the_database_lock() {
    let (_db, store, tenant) = store_without_busy_wait().await;
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
                sign_up(&store, &tenant_id, i).await
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

/// A client that goes away mid-request drops the request's future wherever it stands, a
/// transaction open on SQLite's one write connection included. Forty sign-ups cancelled at
/// points spread over a sign-up's time: the connection is handed on clean (the next writers'
/// transactions succeed) and nothing of a cancelled sign-up is half there (no user without
/// its address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cancelled_half_way_hands_the_write_connection_on_clean() {
    let (_db, store, tenant) = store_without_busy_wait().await;
    let started = Instant::now();
    sign_up(&store, &tenant.id, 1_000)
        .await
        .expect("a first sign-up");
    let one = started.elapsed();
    for i in 0..40 {
        let (store2, tenant_id) = (store.clone(), tenant.id.clone());
        let writer = tokio::spawn(async move { sign_up(&store2, &tenant_id, i).await });
        // Cancelled between 0 and 1.5 times a sign-up's time in: before it starts, while it
        // waits for the write connection, inside its transaction, or after it is done.
        let until = Instant::now() + one * 3 * i as u32 / 80;
        while Instant::now() < until {
            tokio::task::yield_now().await;
        }
        writer.abort();
        let _ = writer.await;
    }
    for i in 100..104 {
        sign_up(&store, &tenant.id, i)
            .await
            .expect("a write after the cancelled ones succeeds");
    }
    let without_address: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users u \
         WHERE NOT EXISTS (SELECT 1 FROM user_emails e WHERE e.user_id = u.id)",
    )
    .fetch_one(store.pool())
    .await
    .expect("reads");
    assert_eq!(
        without_address, 0,
        "a cancelled sign-up left a user without its address"
    );
    let users = store
        .count_users(&tenant.id, None)
        .await
        .expect("counts users");
    assert!(
        (5..=45).contains(&users),
        "the first, the four later sign-ups and only whole cancelled ones: {users}"
    );
}
