//! The janitor: of two apps on one database exactly one runs a housekeeping round (a lease
//! row claimed by one statement), a replica that dies holding the lease is replaced once it
//! runs out and one that stops gives it back; a round deletes, in batches, what ended long
//! enough ago and nothing else.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{AuthPayload, REFRESH, TestApp, spawn_app, spawn_on};

/// Waits until the rounds the apps run when they start are over (one claims the lease, the
/// others find it held), so that the test's own rounds are the only ones.
async fn startup_rounds_done(app: &TestApp) {
    let started = Instant::now();
    while scalar(app, "SELECT COUNT(*) FROM janitor_leases").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no startup round"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let store = app.store().await;
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn exec(app: &TestApp, sql: &str) {
    let store = app.store().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// As if the round's five minutes had passed (or its holder had died and the lease run out).
async fn lease_runs_out(app: &TestApp) {
    exec(app, "UPDATE janitor_leases SET until = 0").await;
}

#[tokio::test]
async fn of_two_replicas_one_runs_a_round_and_a_dead_ones_lease_runs_out() {
    let a = spawn_app().await;
    let b = spawn_on(a.db.share(), |_| {}).await;
    startup_rounds_done(&a).await;
    assert_eq!(
        scalar(&a, "SELECT COUNT(*) FROM janitor_leases").await,
        1,
        "one lease row"
    );
    // Held: neither runs another round before it is due.
    assert_eq!(a.housekeeping_round().await, None);
    assert_eq!(b.housekeeping_round().await, None);
    for _ in 0..5 {
        lease_runs_out(&a).await;
        let (ra, rb) = tokio::join!(a.housekeeping_round(), b.housekeeping_round());
        assert!(
            ra.is_some() != rb.is_some(),
            "exactly one replica runs the round: {ra:?} {rb:?}"
        );
        // The winner holds it; asking again runs nothing anywhere.
        assert_eq!(a.housekeeping_round().await, None);
        assert_eq!(b.housekeeping_round().await, None);
    }
    // `a` holds the lease and falls silent, as a replica that died would (leaked, not
    // dropped: dropping may stop it cleanly, which gives the lease back): `b` waits for the
    // lease to run out.
    lease_runs_out(&a).await;
    assert!(a.housekeeping_round().await.is_some());
    let mut a = a;
    let db = a.db.take();
    std::mem::forget(a);
    assert_eq!(b.housekeeping_round().await, None, "the lease still runs");
    lease_runs_out(&b).await;
    assert!(b.housekeeping_round().await.is_some(), "taken over");
    // A replica that stops gives its lease back: the next one runs at once.
    let c = spawn_on(db.share(), |_| {}).await;
    startup_rounds_done(&c).await;
    assert_eq!(c.housekeeping_round().await, None, "b holds it");
    b.stop().await;
    assert!(c.housekeeping_round().await.is_some(), "given back by b");
    drop(c);
    drop(db);
}

/// A session row and its refresh token, inserted behind the API for `count` sessions named
/// `{prefix}{i}`.
async fn sessions(
    app: &TestApp,
    user: &AuthPayload,
    prefix: &str,
    count: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
) {
    let store = app.store().await;
    let tenant: String = sqlx::query_scalar("SELECT tenant_id FROM users WHERE id = $1")
        .bind(&user.user_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, user_id, method, created_at, last_seen_at, \
         expires_at, revoked_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         SELECT $2 || i, $3, $4, 'password', 0, 0, $5, $6 FROM n",
    )
    .bind(count)
    .bind(prefix)
    .bind(&tenant)
    .bind(&user.user_id)
    .bind(expires_at)
    .bind(revoked_at)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, tenant_id, session_id, token_hash, created_at, \
         expires_at) SELECT 'rt-' || id, tenant_id, id, 'hash-' || id, 0, expires_at \
         FROM sessions WHERE id LIKE $1",
    )
    .bind(format!("{prefix}%"))
    .execute(store.pool())
    .await
    .unwrap();
}

async fn count_like(app: &TestApp, table: &str, column: &str, prefix: &str) -> i64 {
    scalar(
        app,
        &format!("SELECT COUNT(*) FROM {table} WHERE {column} LIKE '{prefix}%'"),
    )
    .await
}

#[tokio::test]
async fn a_round_deletes_in_batches_what_ended_long_enough_ago_and_nothing_else() {
    let app = spawn_app().await;
    startup_rounds_done(&app).await;
    let now = auth_api::domain::now_ms();
    let hour = 3_600_000;
    let alice = app.sign_up("alice@example.com").await;
    // A refresh: alice's first token is spent and holds its successor for the grace window.
    let refreshed: AuthPayload = app
        .gql(REFRESH, json!({"token": alice.refresh_token}), None)
        .await
        .data("refreshSession");
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM refresh_tokens WHERE successor IS NOT NULL"
        )
        .await,
        1
    );
    // More than one batch of each kind that goes, and some of each kind that stays.
    sessions(&app, &alice, "old-expired-", 2500, now - 48 * hour, None).await;
    sessions(&app, &alice, "new-expired-", 7, now - hour, None).await;
    sessions(
        &app,
        &alice,
        "old-revoked-",
        1200,
        now + 48 * hour,
        Some(now - 25 * hour),
    )
    .await;
    sessions(
        &app,
        &alice,
        "new-revoked-",
        5,
        now + 48 * hour,
        Some(now - 23 * hour),
    )
    .await;
    sessions(&app, &alice, "live-", 3, now + 48 * hour, None).await;
    // Successors: one spent an hour ago (erased), one spent just now (kept: grace).
    exec(
        &app,
        &format!(
            "UPDATE refresh_tokens SET used_at = {}, successor = 'sealed' WHERE id = 'rt-live-1'; \
             UPDATE refresh_tokens SET used_at = {now}, successor = 'sealed' WHERE id = 'rt-live-2'",
            now - hour
        ),
    )
    .await;
    // Counters and challenges: a day old goes, younger stays.
    exec(
        &app,
        &format!(
            "INSERT INTO rate_limits (bucket, window_start, hits) VALUES \
               ('old-bucket', {old}, 1), ('new-bucket', {young}, 1); \
             INSERT INTO sign_in_failures (tenant_id, email, failures, last_failure_at) \
               SELECT id, 'old@example.com', 1, {old} FROM tenants; \
             INSERT INTO sign_in_failures (tenant_id, email, failures, last_failure_at) \
               SELECT id, 'new@example.com', 1, {young} FROM tenants; \
             INSERT INTO challenges (id, tenant_id, kind, email, secret_hash, max_attempts, \
               created_at, expires_at) SELECT 'old-challenge', id, 'otp', 'x@example.com', \
               'h1', 5, 0, {old} FROM tenants; \
             INSERT INTO challenges (id, tenant_id, kind, email, secret_hash, max_attempts, \
               created_at, expires_at) SELECT 'new-challenge', id, 'otp', 'x@example.com', \
               'h2', 5, 0, {young} FROM tenants",
            old = now - 25 * hour,
            young = now - 23 * hour,
        ),
    )
    .await;
    let sessions_before = scalar(&app, "SELECT COUNT(*) FROM sessions").await;

    lease_runs_out(&app).await;
    let purged = app.housekeeping_round().await.expect("lease claimed");
    assert_eq!(purged.expired_sessions, 2500, "{purged:?}");
    assert_eq!(purged.revoked_sessions, 1200, "{purged:?}");
    // alice's first token (spent a moment ago) is within the grace window.
    assert_eq!(purged.successors, 1, "{purged:?}");
    assert_eq!(purged.rate_limits, 1, "{purged:?}");
    assert_eq!(purged.sign_in_failures, 1, "{purged:?}");
    assert_eq!(purged.challenges, 1, "{purged:?}");

    for (prefix, left) in [
        ("old-expired-", 0),
        ("new-expired-", 7),
        ("old-revoked-", 0),
        ("new-revoked-", 5),
        ("live-", 3),
    ] {
        assert_eq!(
            count_like(&app, "sessions", "id", prefix).await,
            left,
            "{prefix}"
        );
        assert_eq!(
            count_like(&app, "refresh_tokens", "session_id", prefix).await,
            left,
            "{prefix}: refresh tokens go with their session"
        );
    }
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM sessions").await,
        sessions_before - 3700
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM refresh_tokens WHERE successor IS NOT NULL AND id = 'rt-live-2'"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM refresh_tokens WHERE successor IS NOT NULL"
        )
        .await,
        2,
        "the fresh successors stay (alice's and rt-live-2)"
    );
    assert_eq!(count_like(&app, "rate_limits", "bucket", "new-").await, 1);
    assert_eq!(count_like(&app, "rate_limits", "bucket", "old-").await, 0);
    assert_eq!(
        count_like(&app, "sign_in_failures", "email", "new@").await,
        1
    );
    assert_eq!(
        count_like(&app, "sign_in_failures", "email", "old@").await,
        0
    );
    assert_eq!(count_like(&app, "challenges", "id", "new-").await, 1);
    assert_eq!(count_like(&app, "challenges", "id", "old-").await, 0);

    // alice's own session lives on, refreshed.
    let me = app
        .gql("{ me { id } }", json!({}), Some(&refreshed.access_token))
        .await;
    assert_eq!(me["data"]["me"]["id"], json!(alice.user_id), "{}", me.0);

    // The next round finds nothing more.
    lease_runs_out(&app).await;
    let again = app.housekeeping_round().await.expect("lease claimed");
    assert_eq!(
        again.expired_sessions + again.revoked_sessions,
        0,
        "{again:?}"
    );
    assert_eq!(
        again.rate_limits + again.sign_in_failures + again.challenges,
        0
    );
}
