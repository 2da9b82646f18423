//! Property tests (proptest) of the invariants that matter, against the real app over HTTP
//! on the test database (SQLite, or PostgreSQL with `TEST_DATABASE_URL`), a few cases each
//! so the suite stays fast:
//! - refresh rotation follows its model for any sequence of presented tokens (grace window
//!   off): only the newest token of a live session is exchanged, each at most once, and a
//!   spent one ends the session;
//! - a revoked session never verifies: after any interleaving of sign-ins, refreshes,
//!   sign-outs, revocations of one session and of all, every access and refresh token of an
//!   ended session is refused;
//! - `users` and `auditLog` pages never repeat or skip a row, whatever the page size, with
//!   timestamps that tie and rows written between pages.
//!
//! (Normalised emails comparing equal is a unit property test in `domain/email.rs`.)

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::support::{PASSWORD, REFRESH, TestApp, spawn_app_with};

/// Cases per property: each runs dozens of requests.
const CASES: u32 = 6;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Refreshes with `token`: the new pair's tokens, or the error code.
async fn refresh(app: &TestApp, token: &str) -> Result<(String, String), String> {
    let body = app.gql(REFRESH, json!({"token": token}), None).await;
    match body["data"]["refreshSession"]["refreshToken"].as_str() {
        Some(refresh) => Ok((
            body["data"]["refreshSession"]["accessToken"]
                .as_str()
                .unwrap()
                .to_owned(),
            refresh.to_owned(),
        )),
        None => Err(body.code().to_owned()),
    }
}

async fn me_ok(app: &TestApp, access: &str) -> bool {
    let body = app.gql("{ me { id } }", json!({}), Some(access)).await;
    body["data"]["me"]["id"].is_string()
}

#[test]
fn refresh_tokens_are_exchanged_at_most_once_and_reuse_ends_the_session() {
    let rt = runtime();
    let app = rt.block_on(spawn_app_with(|c| c.refresh_grace_seconds = 0));
    let n = std::cell::Cell::new(0);
    runner()
        .run(&prop::collection::vec(0usize..8, 1..10), |picks| {
            n.set(n.get() + 1);
            let n = n.get();
            rt.block_on(async {
                let email = format!("rotate{n}@example.com");
                let first = app.sign_up(&email).await;
                // The model: tokens in the order issued; the newest is live until spent.
                let mut tokens = vec![first.refresh_token.clone()];
                let mut spent = BTreeSet::new();
                let mut live = true;
                let mut accepted: BTreeMap<String, u32> = BTreeMap::new();
                for pick in picks {
                    let token = tokens[pick % tokens.len()].clone();
                    let newest = token == *tokens.last().unwrap();
                    let answer = refresh(&app, &token).await;
                    let expect_ok = live && newest && !spent.contains(&token);
                    prop_assert_eq!(
                        answer.is_ok(),
                        expect_ok,
                        "token #{} of {}: {:?}",
                        pick % tokens.len(),
                        tokens.len(),
                        answer
                    );
                    match answer {
                        Ok((access, next)) => {
                            *accepted.entry(token.clone()).or_default() += 1;
                            spent.insert(token);
                            prop_assert!(me_ok(&app, &access).await);
                            tokens.push(next);
                        }
                        Err(code) => {
                            prop_assert_eq!(code.as_str(), "UNAUTHENTICATED");
                            if spent.contains(&token) {
                                // Reuse: the session is over.
                                live = false;
                            }
                        }
                    }
                }
                prop_assert!(accepted.values().all(|&times| times == 1), "{accepted:?}");
                if !live {
                    let newest = tokens.last().unwrap().clone();
                    prop_assert!(refresh(&app, &newest).await.is_err(), "ended by reuse");
                }
                Ok::<(), TestCaseError>(())
            })
        })
        .unwrap();
}

/// What the revocation property does next.
#[derive(Debug, Clone)]
enum Step {
    SignIn,
    Refresh(usize),
    SignOut(usize),
    RevokeOther(usize, usize),
    RevokeAll(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::SignIn),
        (0usize..4).prop_map(Step::Refresh),
        (0usize..4).prop_map(Step::SignOut),
        (0usize..4, 0usize..4).prop_map(|(a, b)| Step::RevokeOther(a, b)),
        (0usize..4).prop_map(Step::RevokeAll),
    ]
}

/// A session the property follows: every token it was ever given, and whether it ended.
struct Followed {
    id: String,
    access: Vec<String>,
    refresh: String,
    ended: bool,
}

#[test]
fn a_revoked_session_never_verifies() {
    let rt = runtime();
    let app = rt.block_on(spawn_app_with(|_| {}));
    let n = std::cell::Cell::new(0);
    runner()
        .run(&prop::collection::vec(step(), 1..10), |steps| {
            n.set(n.get() + 1);
            let n = n.get();
            rt.block_on(async {
                let email = format!("revoke{n}@example.com");
                let first = app.sign_up(&email).await;
                let mut sessions = vec![Followed {
                    id: first.session_id,
                    access: vec![first.access_token],
                    refresh: first.refresh_token,
                    ended: false,
                }];
                for step in steps {
                    let count = sessions.len();
                    match step {
                        Step::SignIn => {
                            let p = app.signed_in(&email, PASSWORD).await;
                            sessions.push(Followed {
                                id: p.session_id,
                                access: vec![p.access_token],
                                refresh: p.refresh_token,
                                ended: false,
                            });
                        }
                        Step::Refresh(i) => {
                            let s = &mut sessions[i % count];
                            if let Ok((access, next)) = refresh(&app, &s.refresh).await {
                                prop_assert!(!s.ended, "an ended session refreshed");
                                s.access.push(access);
                                s.refresh = next;
                            }
                        }
                        Step::SignOut(i) => {
                            let s = &mut sessions[i % count];
                            let token = s.access.last().unwrap().clone();
                            let _ = app
                                .gql("mutation { signOut }", json!({}), Some(&token))
                                .await;
                            s.ended = true;
                        }
                        Step::RevokeOther(by, target) => {
                            let token = sessions[by % count].access.last().unwrap().clone();
                            let id = sessions[target % count].id.clone();
                            let body = app
                                .gql(
                                    "mutation($id: ID!) { revokeSession(id: $id) }",
                                    json!({"id": id}),
                                    Some(&token),
                                )
                                .await;
                            if body["data"]["revokeSession"].as_bool() == Some(true) {
                                sessions[target % count].ended = true;
                            }
                        }
                        Step::RevokeAll(by) => {
                            let token = sessions[by % count].access.last().unwrap().clone();
                            let body = app
                                .gql("mutation { revokeAllSessions }", json!({}), Some(&token))
                                .await;
                            if body["errors"].is_null() {
                                sessions.iter_mut().for_each(|s| s.ended = true);
                            }
                        }
                    }
                    for s in sessions.iter().filter(|s| s.ended) {
                        for access in &s.access {
                            prop_assert!(!me_ok(&app, access).await, "revoked {} verifies", s.id);
                        }
                        prop_assert!(refresh(&app, &s.refresh).await.is_err());
                    }
                }
                // And the ones not ended still work (the property is not vacuous).
                for s in sessions.iter().filter(|s| !s.ended) {
                    prop_assert!(
                        me_ok(&app, s.access.last().unwrap()).await,
                        "{} ended",
                        s.id
                    );
                }
                Ok::<(), TestCaseError>(())
            })
        })
        .unwrap();
}

const ADMIN: &str = "pager@example.com";

/// Every id of a walk through `field`'s pages of `first`, calling `between` after each.
async fn walk(
    app: &TestApp,
    token: &str,
    query: &str,
    field: &str,
    vars: Value,
    first: i64,
    mut between: impl AsyncFnMut(),
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut v = vars.clone();
        v["first"] = first.into();
        v["after"] = after;
        let page: Value = app.gql(query, v, Some(token)).await.data(field);
        ids.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return ids;
        }
        after = page["pageInfo"]["endCursor"].clone();
        between().await;
    }
}

async fn exec(app: &TestApp, sql: String) {
    let store = app.store().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[test]
fn users_and_audit_pages_never_repeat_or_skip() {
    let rt = runtime();
    let (app, admin) = rt.block_on(async {
        let app = spawn_app_with(|c| c.admin_emails = vec![ADMIN.into()]).await;
        let admin = app.sign_up_admin(ADMIN).await.access_token;
        (app, admin)
    });
    let users_q = "query($first: Int, $after: String, $search: String) { users(first: $first, \
        after: $after, search: $search) { edges { node { id } } pageInfo { hasNextPage endCursor } } }";
    let audit_q = "query($first: Int, $after: String, $userId: ID) { auditLog(first: $first, \
        after: $after, userId: $userId) { edges { node { id } } pageInfo { hasNextPage endCursor } } }";
    let n = std::cell::Cell::new(0);
    // Rows with times from a small set (so many tie), and a page size.
    let case = (prop::collection::vec(0i64..4, 0..25), 1i64..7);
    runner()
        .run(&case, |(times, first)| {
            n.set(n.get() + 1);
            let n = n.get();
            rt.block_on(async {
                let tenant = "(SELECT id FROM tenants WHERE slug = 'default')";
                let mut users = Vec::new();
                let mut events = Vec::new();
                for (i, t) in times.iter().enumerate() {
                    let at = 1_000_000 + t;
                    let user = format!("pg{n}-u{i:02}");
                    users.push(format!(
                        "('{user}', {tenant}, 'page{n}x {i}', {at}, {at})"
                    ));
                    events.push(format!(
                        "('pg{n}-a{i:02}', {tenant}, {at}, 'user.sign_in', 'pg{n}-subject', '{{}}')"
                    ));
                }
                if !users.is_empty() {
                    exec(&app, format!(
                        "INSERT INTO users (id, tenant_id, name_display, created_at, updated_at) VALUES {}; \
                         INSERT INTO audit_events (id, tenant_id, at, action, user_id, detail) VALUES {}",
                        users.join(", "), events.join(", ")
                    ))
                    .await;
                }
                let before_users: BTreeSet<String> =
                    (0..times.len()).map(|i| format!("pg{n}-u{i:02}")).collect();
                let before_events: BTreeSet<String> =
                    (0..times.len()).map(|i| format!("pg{n}-a{i:02}")).collect();
                // Between pages: one row newer than all and one older than all.
                let mut extra = 0;
                let seen_users = walk(&app, &admin, users_q, "users",
                    json!({"search": format!("page{n}x")}), first, async || {
                        extra += 1;
                        exec(&app, format!(
                            "INSERT INTO users (id, tenant_id, name_display, created_at, updated_at) VALUES \
                             ('pg{n}-new{extra}', {tenant}, 'page{n}x new', 9000000, 9000000), \
                             ('pg{n}-old{extra}', {tenant}, 'page{n}x old', 1, 1)"
                        )).await;
                    }).await;
                let seen_events = walk(&app, &admin, audit_q, "auditLog",
                    json!({"userId": format!("pg{n}-subject")}), first, async || {
                        extra += 1;
                        exec(&app, format!(
                            "INSERT INTO audit_events (id, tenant_id, at, action, user_id, detail) VALUES \
                             ('pg{n}-anew{extra}', {tenant}, 9000000, 'user.sign_in', 'pg{n}-subject', '{{}}'), \
                             ('pg{n}-aold{extra}', {tenant}, 1, 'user.sign_in', 'pg{n}-subject', '{{}}')"
                        )).await;
                    }).await;
                for (seen, before, what) in [
                    (&seen_users, &before_users, "users"),
                    (&seen_events, &before_events, "auditLog"),
                ] {
                    let unique: BTreeSet<&String> = seen.iter().collect();
                    prop_assert_eq!(unique.len(), seen.len(), "{} repeats: {:?}", what, seen);
                    let missing: Vec<&String> =
                        before.iter().filter(|id| !unique.contains(id)).collect();
                    prop_assert!(missing.is_empty(), "{} skips {:?} (saw {:?})", what, missing, seen);
                    // Newest first: rows of the walk that existed before it keep their order.
                    let at = |id: &str| {
                        let i: usize = id[id.len() - 2..].parse().unwrap();
                        (times[i], id.to_owned())
                    };
                    let order: Vec<(i64, String)> = seen
                        .iter()
                        .filter(|id| before.contains(*id))
                        .map(|id| at(id))
                        .collect();
                    prop_assert!(
                        order.windows(2).all(|w| w[0] > w[1]),
                        "{} out of order: {:?}", what, order
                    );
                }
                Ok::<(), TestCaseError>(())
            })
        })
        .unwrap();
}
