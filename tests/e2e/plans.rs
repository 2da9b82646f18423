//! Query plans at size: PostgreSQL only (on SQLite the test returns at once and says so on
//! stderr: SQLite has no `auto_explain`, and the plans that matter are the production
//! database's). The database gets `auto_explain` for every connection, plans sent to the
//! client as NOTICEs, which sqlx logs and a tracing layer here collects; tens of thousands of
//! users, sessions, refresh tokens and audit events are generated and analysed; then the real
//! app, over HTTP, signs in, refreshes, answers `me`, `sessions`, `users(search)` and
//! `auditLog(userId)` pages, and runs a housekeeping round. Every statement it ran is
//! explained with the values it ran with; the test fails when one of them reads `users`,
//! `user_emails`, `sessions`, `refresh_tokens` or `audit_events` with a sequential scan, or
//! when one of the hot statements was not seen at all (so a capture that sees nothing fails).
//! No SQL is copied here: the statements are the store's own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sqlx::Connection;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::support::{AuthPayload, PASSWORD, REFRESH, TestApp, TestDb, spawn_on};

/// The tables that grow with the users; a sequential scan of one is a bug.
const LARGE: &[&str] = &[
    "users",
    "user_emails",
    "sessions",
    "refresh_tokens",
    "audit_events",
];

/// Generated users (three sessions, a refresh token each, and four audit events per user).
const USERS: i64 = 20_000;

/// The plans `auto_explain` sent while capturing.
#[derive(Default)]
struct Plans {
    capturing: AtomicBool,
    seen: Mutex<Vec<String>>,
}

struct Capture(Arc<Plans>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::postgres::notice"
            || !self.0.capturing.load(Ordering::SeqCst)
        {
            return;
        }
        struct Message(String);
        impl Visit for Message {
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "message" {
                    self.0 = value.to_owned();
                }
            }
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && self.0.is_empty() {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if message.0.contains("Query Text:") {
            self.0.seen.lock().unwrap().push(message.0);
        }
    }
}

/// The large tables `plan` reads with a sequential scan.
fn seq_scans(plan: &str) -> Vec<&'static str> {
    plan.match_indices("Seq Scan on ")
        .filter_map(|(at, found)| {
            let table = plan[at + found.len()..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()?;
            LARGE.iter().copied().find(|large| *large == table)
        })
        .collect()
}

/// `auto_explain` for every later connection to the test database, plans at NOTICE level
/// (so they go to the client, not the server's log).
async fn explain_everything(db: &TestDb) {
    let (_, name) = db.url.rsplit_once('/').expect("database name");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    for setting in [
        "session_preload_libraries = 'auto_explain'",
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_level = 'notice'",
        "auto_explain.log_format = 'text'",
        // At tens of thousands of rows a scan is sometimes rightly cheaper than an index
        // that wins at a million; with scans priced out, one appears only where no index
        // can serve the statement, which is what stays slow at any size.
        "enable_seqscan = off",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} SET {setting}"
        )))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{setting}: {e}"));
    }
}

/// Rows in the shape the API writes them, for `USERS` users of the default tenant, made
/// over the last hours (so the janitor keeps them).
async fn fill(app: &TestApp) {
    let store = app.store().await;
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE password_hash IS NOT NULL")
            .fetch_one(store.pool())
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO users (id, tenant_id, password_hash, name_first, name_last, name_display, \
           created_at, updated_at) \
         SELECT 'gen-u' || i, t.id, $2, 'First' || i, 'Last' || i, 'User ' || i, \
           $3 - i * 1000, $3 - i * 1000 \
         FROM tenants t, generate_series(1, $1) AS i WHERE t.slug = 'default'",
    )
    .bind(USERS)
    .bind(&hash)
    .bind(auth_api::domain::now_ms())
    .execute(store.pool())
    .await
    .expect("users");
    sqlx::raw_sql(
        "INSERT INTO user_emails (id, tenant_id, user_id, email, state, is_primary, created_at) \
         SELECT 'gen-e' || id, tenant_id, id, 'gen' || substr(id, 6) || '@example.com', \
           'active', 1, created_at FROM users WHERE id LIKE 'gen-u%'; \
         INSERT INTO sessions (id, tenant_id, user_id, method, created_at, last_seen_at, \
           expires_at, revoked_at) \
         SELECT 'gen-s' || id || '.' || j, tenant_id, id, 'password', created_at, created_at, \
           9000000000000 + created_at, CASE WHEN j = 1 THEN 8000000000000 + created_at END \
         FROM users, generate_series(0, 2) AS j WHERE id LIKE 'gen-u%'; \
         INSERT INTO refresh_tokens (id, tenant_id, session_id, token_hash, created_at, \
           expires_at) \
         SELECT 'gen-r' || id, tenant_id, id, md5(id), 0, expires_at FROM sessions \
         WHERE id LIKE 'gen-s%'; \
         INSERT INTO audit_events (id, tenant_id, at, action, actor, user_id, session_id, detail) \
         SELECT 'gen-a' || id, tenant_id, created_at, 'user.sign_in', 'user:' || user_id, \
           user_id, id, '{}' FROM sessions WHERE id LIKE 'gen-s%'; \
         INSERT INTO audit_events (id, tenant_id, at, action, actor, user_id, detail) \
         SELECT 'gen-b' || id, tenant_id, created_at, 'user.sign_up', 'user:' || id, id, '{}' \
         FROM users WHERE id LIKE 'gen-u%'",
    )
    .execute(store.pool())
    .await
    .expect("generated rows");
    sqlx::raw_sql("ANALYZE")
        .execute(store.pool())
        .await
        .expect("analyze");
}

const ADMIN: &str = "boss@example.com";

#[tokio::test]
async fn no_hot_statement_reads_a_large_table_sequentially() {
    let db = TestDb::new().await;
    if !db.is_postgres() {
        eprintln!("plans: PostgreSQL only (set TEST_DATABASE_URL); skipped on SQLite");
        return;
    }
    let plans = Arc::new(Plans::default());
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Capture(plans.clone())),
    )
    .expect("the only subscriber of this test process");
    explain_everything(&db).await;
    let app = spawn_on(db, |c| c.admin_emails = vec![ADMIN.into()]).await;
    let admin = app.sign_up_admin(ADMIN).await.access_token;
    let alice = app.sign_up("alice@example.com").await;
    fill(&app).await;

    // The detector itself: a scan it must see, on a connection with the same settings.
    plans.capturing.store(true, Ordering::SeqCst);
    {
        let store = app.store().await;
        sqlx::query("SELECT COUNT(*) FROM sessions WHERE os = 'none'")
            .execute(store.pool())
            .await
            .unwrap();
    }
    let own: Vec<String> = std::mem::take(&mut *plans.seen.lock().unwrap());
    assert!(
        own.iter().any(|plan| seq_scans(plan) == ["sessions"]),
        "the detector misses a plain scan: {own:#?}"
    );

    // The hot paths, as clients call them.
    let signed_in = app.signed_in("alice@example.com", PASSWORD).await;
    let refreshed: AuthPayload = app
        .gql(REFRESH, json!({"token": signed_in.refresh_token}), None)
        .await
        .data("refreshSession");
    let me = app
        .gql(
            "{ me { id emails { primary } } sessions { id } }",
            json!({}),
            Some(&refreshed.access_token),
        )
        .await;
    assert_eq!(me["data"]["me"]["id"], json!(alice.user_id), "{}", me.0);
    let wrong = app.sign_in("gen77@example.com", "not the password").await;
    assert!(wrong["errors"].is_array(), "{}", wrong.0);
    let users = "query($search: String, $after: String) { users(first: 20, search: $search, \
        after: $after) { edges { node { id } } pageInfo { endCursor } } }";
    for search in [json!("gen1234"), json!("user 99"), Value::Null] {
        let first = app
            .gql(users, json!({"search": search}), Some(&admin))
            .await;
        let page: Value = first.data("users");
        let after = page["pageInfo"]["endCursor"].clone();
        let _: Value = app
            .gql(
                users,
                json!({"search": search, "after": after}),
                Some(&admin),
            )
            .await
            .data("users");
    }
    let log = "query($userId: ID, $after: String) { auditLog(first: 20, userId: $userId, \
        after: $after) { edges { node { id } } pageInfo { endCursor } } }";
    for user in [json!(alice.user_id), json!("gen-u77"), Value::Null] {
        let page: Value = app
            .gql(log, json!({"userId": user}), Some(&admin))
            .await
            .data("auditLog");
        let after = page["pageInfo"]["endCursor"].clone();
        let _: Value = app
            .gql(log, json!({"userId": user, "after": after}), Some(&admin))
            .await
            .data("auditLog");
    }
    let out = app
        .gql(
            "mutation { signOut }",
            json!({}),
            Some(&refreshed.access_token),
        )
        .await;
    assert!(out["errors"].is_null(), "{}", out.0);
    {
        let store = app.store().await;
        sqlx::query("UPDATE janitor_leases SET until = 0")
            .execute(store.pool())
            .await
            .unwrap();
    }
    assert!(app.housekeeping_round().await.is_some(), "lease claimed");
    plans.capturing.store(false, Ordering::SeqCst);

    let seen = std::mem::take(&mut *plans.seen.lock().unwrap());
    let scans: Vec<&String> = seen.iter().filter(|p| !seq_scans(p).is_empty()).collect();
    assert!(
        scans.is_empty(),
        "{} of {} statements scan a large table:\n{}",
        scans.len(),
        seen.len(),
        scans
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n----\n")
    );
    // Each hot statement was explained (by a fragment of its text).
    for fragment in [
        "FROM user_emails",
        "FROM refresh_tokens WHERE token_hash",
        "UPDATE refresh_tokens SET used_at",
        "JOIN users u ON u.id = s.user_id",
        "FROM users u WHERE u.tenant_id = $1 AND u.id IN",
        "FROM audit_events",
        "DELETE FROM sessions WHERE id IN",
        "UPDATE refresh_tokens SET successor = NULL",
        "UPDATE sessions SET revoked_at",
    ] {
        assert!(
            seen.iter().any(|plan| plan.contains(fragment)),
            "no statement with {fragment:?} was explained; saw:\n{}",
            seen.iter()
                .filter_map(|p| p.lines().find(|l| l.contains("Query Text")))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
