//! Faults the suite can stage by itself: the database cut off under a running API (on
//! PostgreSQL: connections refused and the open ones terminated, as when the server stops).
//! Requests fail promptly with `INTERNAL` (no waiting past the pool's acquire timeout),
//! `/readyz` says not ready within a second, and service resumes without a restart. The
//! scripts in `bench/faults/` stage the rest (kill -9, a stopped server, partitions, SMTP).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{PASSWORD, code, spawn_app_with};

const ME: &str = "{ me { id } }";

#[tokio::test]
async fn a_database_outage_is_answered_promptly_and_readiness_follows_it() {
    // The default acquire timeout (3 s; the test harness raises it).
    let default = auth_api::config::Config::for_database("sqlite://unused.db");
    assert_eq!(default.database_acquire_timeout_seconds, 3);
    let app = spawn_app_with(|c| {
        c.database_acquire_timeout_seconds = default.database_acquire_timeout_seconds;
    })
    .await;
    if !app.db.is_postgres() {
        eprintln!("skipped: needs PostgreSQL (TEST_DATABASE_URL) to cut the database off");
        return;
    }
    let user = app.sign_up("outage@example.com").await;
    let token = user.access_token.clone();
    assert!(app.gql(ME, json!({}), Some(&token)).await["errors"].is_null());
    assert_eq!(app.get("/readyz").await.0, 200);

    assert!(app.db.set_reachable(false).await);
    // The default acquire timeout is 3 s: a request waits for it at most, then fails.
    for _ in 0..2 {
        let started = Instant::now();
        let body = app.gql(ME, json!({}), Some(&token)).await;
        let took = started.elapsed();
        assert_eq!(code(&body), "INTERNAL", "{body}");
        assert!(
            took < Duration::from_millis(4500),
            "me failed after {took:?}"
        );
        let started = Instant::now();
        let body = app.sign_in("outage@example.com", PASSWORD).await;
        let took = started.elapsed();
        assert_eq!(code(&body), "INTERNAL", "{body}");
        assert!(
            took < Duration::from_millis(4500),
            "signIn failed after {took:?}"
        );
        // /readyz answers on its own short timeout, whatever the pool's.
        let started = Instant::now();
        let (status, _, body) = app.get("/readyz").await;
        let took = started.elapsed();
        assert_eq!(status, 503, "{body}");
        assert!(
            took < Duration::from_secs(1),
            "/readyz answered after {took:?}"
        );
    }

    // Back: service resumes without a restart.
    assert!(app.db.set_reachable(true).await);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = app.gql(ME, json!({}), Some(&token)).await;
        if body["errors"].is_null() && app.get("/readyz").await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not back: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.sign_in("outage@example.com", PASSWORD).await["errors"].is_null());
}

#[tokio::test]
async fn a_pooled_connection_the_server_ended_while_idle_is_replaced_before_a_request_uses_it() {
    // After a server restart every connection idle in the pool is dead, and no request may
    // be the one that finds out: on PostgreSQL the pool pings a connection before handing
    // it out (on SQLite, where nothing can end one, it does not).
    let app = spawn_app_with(|_| {}).await;
    if !app.db.is_postgres() {
        eprintln!("skipped: needs PostgreSQL (TEST_DATABASE_URL) to end the connections");
        return;
    }
    let user = app.sign_up("restart@example.com").await;
    let token = user.access_token.clone();
    for _ in 0..4 {
        assert!(app.gql(ME, json!({}), Some(&token)).await["errors"].is_null());
    }
    // Every connection back in the pool (each is pinged as it is taken back) before the
    // server ends them.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(app.db.end_connections().await);
    for _ in 0..4 {
        let body = app.gql(ME, json!({}), Some(&token)).await;
        assert!(body["errors"].is_null(), "{body}");
    }
    assert!(app.sign_in("restart@example.com", PASSWORD).await["errors"].is_null());
    assert_eq!(app.get("/readyz").await.0, 200);
}
