//! The account after sign-up: changing the password, deleting the account, and an admin
//! ending a user's sessions or deleting the user. Each ends sessions, so each must reach the
//! revocation feed.

use serde_json::{Value, json};

use crate::support::{
    AuthPayload, Gql, PASSWORD, REFRESH, TestApp, code, spawn_app, spawn_app_with,
};

const CHANGE: &str = "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) }";
const NEW_PASSWORD: &str = "another long passphrase entirely";
const ME: &str = "{ me { id } }";
const ADMIN_REVOKE: &str = "mutation($u: ID!) { adminRevokeSessions(userId: $u) }";
const ADMIN_DELETE: &str = "mutation($u: ID!) { adminDeleteUser(id: $u) }";

async fn change(app: &TestApp, bearer: &str, current: &str, new: &str) -> Gql {
    app.gql(CHANGE, json!({"c": current, "n": new}), Some(bearer))
        .await
}

/// The revocation feed's entries, as a verifier reads them.
async fn feed(app: &TestApp) -> Vec<Value> {
    let verify = app.machine_token("default", &["verify"]).await;
    let body = app.get_json("/internal/revocations", Some(&verify)).await;
    body["entries"].as_array().expect("entries").clone()
}

fn has_entry(entries: &[Value], kind: &str, id: &str) -> bool {
    entries.iter().any(|e| e["kind"] == kind && e["id"] == id)
}

async fn refresh(app: &TestApp, payload: &AuthPayload) -> Gql {
    app.gql(REFRESH, json!({"token": payload.refresh_token}), None)
        .await
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_and_keeps_this_one() {
    let app = spawn_app().await;
    let email = "changer@example.com";
    let here = app.sign_up(email).await;
    let there = app.signed_in(email, PASSWORD).await;
    let here_session = &here.session_id;
    let there_session = &there.session_id;

    // Wrong current password, weak or address-like new ones: refused, nothing changes.
    let body = change(&app, &here.access_token, "not my password", NEW_PASSWORD).await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    let body = change(&app, &here.access_token, PASSWORD, "password").await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    let body = change(&app, &here.access_token, PASSWORD, email).await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    assert!(
        app.gql(ME, json!({}), Some(&there.access_token)).await["errors"].is_null(),
        "a refused change ends nothing"
    );

    let body = change(&app, &here.access_token, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");

    // This session goes on, with its refresh token; the other one is over.
    assert!(app.gql(ME, json!({}), Some(&here.access_token)).await["errors"].is_null());
    assert!(refresh(&app, &here).await["errors"].is_null());
    assert_eq!(
        code(&app.gql(ME, json!({}), Some(&there.access_token)).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(code(&refresh(&app, &there).await), "UNAUTHENTICATED");

    // The old password is refused, the new one accepted.
    assert_eq!(
        code(&app.sign_in(email, PASSWORD).await),
        "INVALID_CREDENTIALS"
    );
    assert!(app.sign_in(email, NEW_PASSWORD).await["errors"].is_null());

    // Verifiers hear of the other session only.
    let entries = feed(&app).await;
    assert!(has_entry(&entries, "session", there_session), "{entries:?}");
    assert!(!has_entry(&entries, "session", here_session), "{entries:?}");

    // Machine tokens have no password to change.
    let admin = app.machine_token("default", &["admin"]).await;
    let body = change(&app, &admin, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(body.code(), "FORBIDDEN", "{body}");
    let body = app
        .gql(CHANGE, json!({"c": PASSWORD, "n": NEW_PASSWORD}), None)
        .await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");
}

#[tokio::test]
async fn wrong_current_passwords_are_rate_limited_per_user() {
    let app = spawn_app().await;
    let user = app.sign_up("guessed@example.com").await;
    for attempt in 0..5 {
        let body = change(
            &app,
            &user.access_token,
            &format!("guess {attempt}"),
            NEW_PASSWORD,
        )
        .await;
        assert_eq!(
            code(&body),
            "INVALID_CREDENTIALS",
            "attempt {attempt}: {body}"
        );
    }
    let body = change(&app, &user.access_token, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(body.code(), "RATE_LIMITED", "{body}");
    assert!(
        body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Another user is not affected.
    let other = app.sign_up("unguessed@example.com").await;
    let body = change(&app, &other.access_token, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
}

#[tokio::test]
async fn deleting_the_account_removes_it_and_every_token() {
    let app = spawn_app().await;
    let email = "leaving@example.com";
    let first = app.sign_up(email).await;
    let second = app.signed_in(email, PASSWORD).await;
    let user_id = first.user_id.clone();
    let bystander = app.sign_up("staying@example.com").await;

    let body = app
        .gql(
            "mutation { deleteAccount }",
            json!({}),
            Some(&first.access_token),
        )
        .await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");

    for gone in [&first, &second] {
        assert_eq!(
            code(&app.gql(ME, json!({}), Some(&gone.access_token)).await),
            "UNAUTHENTICATED"
        );
        assert_eq!(code(&refresh(&app, gone).await), "UNAUTHENTICATED");
    }
    assert!(app.gql(ME, json!({}), Some(&bystander.access_token)).await["errors"].is_null());
    assert_eq!(
        code(&app.sign_in(email, PASSWORD).await),
        "INVALID_CREDENTIALS"
    );
    assert!(has_entry(&feed(&app).await, "user", &user_id));

    // Nothing of the account is left but its audit trail; the address is free again.
    let store = app.store().await;
    for query in [
        "SELECT COUNT(*) FROM users WHERE id = $1",
        "SELECT COUNT(*) FROM user_emails WHERE user_id = $1",
        "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
    ] {
        let (left,): (i64,) = sqlx::query_as(query)
            .bind(&user_id)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0, "{query}");
    }
    let (audited,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_events WHERE user_id = $1 AND action = 'user.deleted'",
    )
    .bind(&user_id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let again = app.sign_up(email).await;
    assert_ne!(again.user_id, first.user_id);
}

#[tokio::test]
async fn admins_end_sessions_and_delete_users_of_their_tenant_only() {
    let app = spawn_app_with(|c| c.admin_emails = vec!["boss@example.com".into()]).await;
    let boss = app.sign_up_admin("boss@example.com").await;
    let target = app.sign_up("target@example.com").await;
    let second = app.signed_in("target@example.com", PASSWORD).await;
    let target_id = target.user_id.clone();
    let peer = app.sign_up("peer@example.com").await;

    // Not an admin: refused, nothing ends.
    let body = app
        .gql(
            ADMIN_REVOKE,
            json!({"u": target_id}),
            Some(&peer.access_token),
        )
        .await;
    assert_eq!(body.code(), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            ADMIN_DELETE,
            json!({"u": target_id}),
            Some(&peer.access_token),
        )
        .await;
    assert_eq!(body.code(), "FORBIDDEN", "{body}");
    assert!(app.gql(ME, json!({}), Some(&target.access_token)).await["errors"].is_null());

    // An admin user ends both sessions: one cut-off entry on the feed.
    let body = app
        .gql(
            ADMIN_REVOKE,
            json!({"u": target_id}),
            Some(&boss.access_token),
        )
        .await;
    assert_eq!(body["data"]["adminRevokeSessions"], 2, "{body}");
    for gone in [&target, &second] {
        assert_eq!(
            code(&app.gql(ME, json!({}), Some(&gone.access_token)).await),
            "UNAUTHENTICATED"
        );
    }
    assert!(has_entry(&feed(&app).await, "user", &target_id));
    // The account itself is intact: signing in again works, and the new token too.
    let back = &app.signed_in("target@example.com", PASSWORD).await;
    assert!(app.gql(ME, json!({}), Some(&back.access_token)).await["errors"].is_null());

    // Unknown ids, and users of another tenant, are not found.
    let body = app
        .gql(
            ADMIN_REVOKE,
            json!({"u": "no-such-user"}),
            Some(&boss.access_token),
        )
        .await;
    assert_eq!(body.code(), "NOT_FOUND", "{body}");
    let platform = app.machine_token("default", &["platform"]).await;
    let created = app
        .gql(
            "mutation { createTenant(input: {slug: \"other\", name: \"Other\"}) { slug } }",
            json!({}),
            Some(&platform),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    let other_admin = app.machine_token("other", &["admin"]).await;
    let (_, body) = app
        .gql_raw(
            ADMIN_DELETE,
            json!({"u": target_id}),
            Some(&other_admin),
            Some("other"),
        )
        .await;
    assert_eq!(body.code(), "NOT_FOUND", "{body}");

    // A machine token with scope admin deletes the user; a second delete finds nothing.
    let admin = app.machine_token("default", &["admin"]).await;
    let body = app
        .gql(ADMIN_DELETE, json!({"u": target_id}), Some(&admin))
        .await;
    assert_eq!(body["data"]["adminDeleteUser"], true, "{body}");
    assert_eq!(
        code(&app.gql(ME, json!({}), Some(&back.access_token)).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&app.sign_in("target@example.com", PASSWORD).await),
        "INVALID_CREDENTIALS"
    );
    let body = app
        .gql(ADMIN_DELETE, json!({"u": target_id}), Some(&admin))
        .await;
    assert_eq!(body.code(), "NOT_FOUND", "{body}");
    assert!(app.gql(ME, json!({}), Some(&peer.access_token)).await["errors"].is_null());
}
