//! The audit log: a scripted sequence of actions leaves the complete trail (with actors,
//! user agents, no secrets), `auditLog` pages without gaps or duplicates while events are
//! written between pages, filters, admin-only and per tenant, retention deleting only old
//! events; machine tokens with `expiresAt` and `lastUsedAt`; idle sessions refused.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::otp;
use crate::support::{
    AuthPayload, PASSWORD, REFRESH, SmtpServer, TestApp, Verifier, spawn_app_with,
};

const ADMIN: &str = "boss@example.com";

const LOG: &str = "query($first: Int, $after: String, $action: String, $userId: ID) { \
    auditLog(first: $first, after: $after, action: $action, userId: $userId) { \
      edges { cursor node { id at action actor { kind id } userId sessionId ip userAgent detail } } \
      pageInfo { hasNextPage endCursor } } }";

async fn admin_app(smtp: Option<&SmtpServer>) -> (TestApp, String) {
    let url = smtp.map(SmtpServer::url);
    let app = spawn_app_with(move |c| {
        c.admin_emails = vec![ADMIN.into()];
        c.smtp_url = url;
    })
    .await;
    let admin = app.sign_up_admin(ADMIN).await;
    (app, admin.access_token)
}

/// Every event of a walk through the log's pages (`first` at a time) for `filter`.
async fn all_events(app: &TestApp, token: &str, first: i64, filter: Value) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut vars = filter.clone();
        vars["first"] = first.into();
        vars["after"] = after.clone().into();
        let page: Value = app.gql(LOG, vars, Some(token)).await.data("auditLog");
        events.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return events;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

fn actions(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_scripted_sequence_leaves_the_complete_trail() {
    let smtp = SmtpServer::start().await;
    let (app, admin) = admin_app(Some(&smtp)).await;
    let email = "trail@example.com";
    let signed_up = app.sign_up(email).await;
    let user = signed_up.user_id.clone();
    assert_eq!(
        app.sign_in(email, "wrong password entirely").await.code(),
        "INVALID_CREDENTIALS"
    );
    let session = app.signed_in(email, PASSWORD).await;
    let refreshed: AuthPayload = app
        .gql(REFRESH, json!({"token": session.refresh_token}), None)
        .await
        .data("refreshSession");
    let (challenge, code, _) = otp::request(&app, &smtp, email).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        otp::verify(&app, email, &challenge, wrong).await.code(),
        "INVALID_CREDENTIALS"
    );
    app.gql(
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        json!({"e": email}),
        None,
    )
    .await
    .data::<bool>("requestPasswordReset");
    let new_password = "an entirely new passphrase 42";
    app.gql(
        "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) }",
        json!({"c": PASSWORD, "n": new_password}),
        Some(&refreshed.access_token),
    )
    .await
    .data::<bool>("changePassword");
    let second = app.signed_in(email, new_password).await;
    app.gql(
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({"id": second.session_id}),
        Some(&refreshed.access_token),
    )
    .await
    .data::<bool>("revokeSession");
    app.gql(
        "mutation { signOut }",
        json!({}),
        Some(&refreshed.access_token),
    )
    .await
    .data::<bool>("signOut");
    app.signed_in(email, new_password).await;
    let update = "mutation($id: ID!, $input: AdminUserInput!) { adminUpdateUser(id: $id, input: $input) { id } }";
    for input in [
        json!({"roles": ["editor"]}),
        json!({"name": "Trail"}),
        json!({"disabled": true}),
        json!({"disabled": false}),
    ] {
        app.gql(update, json!({"id": user, "input": input}), Some(&admin))
            .await
            .data::<Value>("adminUpdateUser");
    }
    app.gql(
        "mutation($u: ID!) { adminRevokeSessions(userId: $u) }",
        json!({"u": user}),
        Some(&admin),
    )
    .await
    .data::<u64>("adminRevokeSessions");
    app.gql(
        "mutation { updateSettings(input: {otpLength: 7}) { otpLength } }",
        json!({}),
        Some(&admin),
    )
    .await
    .data::<Value>("updateSettings");
    let created = app
        .gql("mutation { createApiToken(input: {name: \"ci\", scopes: [\"verify\"]}) { id secret } }", json!({}), Some(&admin))
        .await
        .data::<Value>("createApiToken");
    let token_secret = created["secret"].as_str().unwrap().to_owned();
    app.gql(
        "mutation($id: ID!) { deleteApiToken(id: $id) }",
        json!({"id": created["id"]}),
        Some(&admin),
    )
    .await
    .data::<bool>("deleteApiToken");
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "acme").await;
    app.gql(
        "mutation { deleteTenant(slug: \"acme\") }",
        json!({}),
        Some(&platform),
    )
    .await
    .data::<bool>("deleteTenant");
    app.gql(
        "mutation($id: ID!) { adminDeleteUser(id: $id) }",
        json!({"id": user}),
        Some(&admin),
    )
    .await
    .data::<bool>("adminDeleteUser");
    // Failed sign-ins and reset requests are written after answering.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let about_user = all_events(&app, &admin, 7, json!({"userId": user})).await;
    let expected: BTreeSet<String> = [
        "user.sign_up",
        "user.sign_in_failed",
        "user.sign_in",
        "session.refreshed",
        "user.otp_requested",
        "user.password_reset_requested",
        "user.password_changed",
        "session.revoked",
        "session.signed_out",
        "admin.roles_changed",
        "admin.user_updated",
        "admin.user_disabled",
        "admin.user_enabled",
        "admin.sessions_revoked",
        "user.deleted",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let got = actions(&about_user);
    assert!(
        got.is_superset(&expected),
        "missing {:?}",
        expected.difference(&got).collect::<Vec<_>>()
    );
    assert!(about_user.iter().all(|e| e["userId"] == user.as_str()));
    // Both kinds of failed sign-in are there.
    let failures: Vec<&Value> = about_user
        .iter()
        .filter(|e| e["action"] == "user.sign_in_failed")
        .collect();
    assert!(
        failures
            .iter()
            .any(|e| e["detail"]["reason"] == "wrong_code"),
        "{failures:?}"
    );
    assert!(failures.len() >= 2, "{failures:?}");
    // Actors: the user for their own doings, the admin (a user) for admin actions.
    let boss = app.gql("{ me { id } }", json!({}), Some(&admin)).await["data"]["me"]["id"].clone();
    for event in &about_user {
        let action = event["action"].as_str().unwrap();
        let actor = &event["actor"];
        if action.starts_with("admin.") || action == "user.deleted" {
            assert_eq!(actor, &json!({"kind": "USER", "id": boss}), "{event}");
        } else {
            assert_eq!(actor, &json!({"kind": "USER", "id": user}), "{event}");
        }
        assert!(
            event["ip"].as_str().is_some_and(|ip| ip == "127.0.0.1"),
            "{event}"
        );
        if action != "user.password_reset_requested" {
            assert!(
                event["userAgent"]
                    .as_str()
                    .is_some_and(|ua| ua.contains("Safari")),
                "{event}"
            );
        }
    }
    // Tenant-wide events: settings, tokens, tenants (in the default tenant, by the platform).
    let everything = all_events(&app, &admin, 100, json!({})).await;
    for action in [
        "admin.settings_updated",
        "admin.token_created",
        "admin.token_deleted",
        "platform.tenant_created",
        "platform.tenant_deleted",
    ] {
        assert!(actions(&everything).contains(action), "no {action}");
    }
    let tenant_created = everything
        .iter()
        .find(|e| e["action"] == "platform.tenant_created")
        .unwrap();
    assert_eq!(tenant_created["actor"]["kind"], "MACHINE_TOKEN");
    assert_eq!(tenant_created["detail"]["slug"], "acme");
    // No secret anywhere in the log.
    let text = serde_json::to_string(&everything).unwrap();
    for secret in [
        PASSWORD,
        new_password,
        &session.refresh_token,
        &refreshed.refresh_token,
        &refreshed.access_token,
        &token_secret,
        &platform,
        &code,
    ] {
        assert!(!text.contains(secret), "the log holds a secret");
    }
    // The action filter.
    let sign_ins = all_events(&app, &admin, 2, json!({"action": "user.sign_in"})).await;
    assert!(sign_ins.len() >= 4);
    assert!(sign_ins.iter().all(|e| e["action"] == "user.sign_in"));
}

#[tokio::test]
async fn refresh_reuse_is_recorded_as_the_system_s_doing() {
    let app = spawn_app_with(|c| {
        c.admin_emails = vec![ADMIN.into()];
        c.refresh_grace_seconds = 0;
    })
    .await;
    let admin = app.sign_up_admin(ADMIN).await.access_token;
    let user = app.sign_up("reuse@example.com").await;
    app.gql(REFRESH, json!({"token": user.refresh_token}), None)
        .await
        .data::<Value>("refreshSession");
    assert_eq!(
        app.gql(REFRESH, json!({"token": user.refresh_token}), None)
            .await
            .code(),
        "UNAUTHENTICATED"
    );
    let reuse = all_events(&app, &admin, 10, json!({"action": "session.refresh_reuse"})).await;
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0]["actor"], json!({"kind": "SYSTEM", "id": null}));
    assert_eq!(reuse[0]["sessionId"], user.session_id.as_str());
}

#[tokio::test]
async fn the_log_pages_without_gaps_or_duplicates_while_events_are_written() {
    let (app, admin) = admin_app(None).await;
    for i in 0..12 {
        app.sign_up(&format!("pager{i}@example.com")).await;
    }
    let before = all_events(&app, &admin, 100, json!({})).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut extra = 0;
    loop {
        let page: Value = app
            .gql(LOG, json!({"first": 4, "after": after}), Some(&admin))
            .await
            .data("auditLog");
        seen.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].clone()),
        );
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        app.sign_up(&format!("between{extra}@example.com")).await;
        extra += 1;
    }
    let expected: Vec<Value> = before.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(
        seen, expected,
        "newest first, each once, none of the later ones"
    );
    let times: Vec<time::OffsetDateTime> = before
        .iter()
        .map(|e| {
            let at = e["at"].as_str().unwrap();
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap()
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    // Admin only, and per tenant.
    let user = app.sign_up("nosy@example.com").await;
    assert_eq!(
        app.gql(LOG, json!({}), Some(&user.access_token))
            .await
            .code(),
        "FORBIDDEN"
    );
    let verify = app.machine_token("default", &["verify"]).await;
    assert_eq!(
        app.gql(LOG, json!({}), Some(&verify)).await.code(),
        "FORBIDDEN"
    );
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "acme").await;
    let acme = app.machine_token("acme", &["admin"]).await;
    let (_, other) = app.gql_raw(LOG, json!({}), Some(&acme), Some("acme")).await;
    let other: Value = other.data("auditLog");
    assert!(
        other["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["action"] == "admin.token_created"),
        "{other}"
    );
    let (_, cross) = app
        .gql_raw(LOG, json!({}), Some(&admin), Some("acme"))
        .await;
    assert_eq!(cross.code(), "FORBIDDEN");
    let bad = app
        .gql(LOG, json!({"after": "garbage!"}), Some(&admin))
        .await;
    assert_eq!(bad.error().extensions["field"], "after");
}

#[tokio::test]
async fn retention_deletes_only_events_older_than_the_tenant_keeps() {
    let (app, admin) = admin_app(None).await;
    let store = app.store().await;
    let tenant = store.tenant_by_slug("default").await.unwrap();
    let day = 86_400_000i64;
    let now = auth_api::domain::now_ms();
    for (i, age_days) in [400, 366, 364, 10, 1].iter().enumerate() {
        sqlx::query(
            "INSERT INTO audit_events (id, tenant_id, at, action, detail) VALUES ($1, $2, $3, 'test.old', '{}')",
        )
        .bind(format!("old-{i}"))
        .bind(&tenant.id)
        .bind(now - age_days * day)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let count = async || -> Vec<String> {
        let events = all_events(&app, &admin, 100, json!({"action": "test.old"})).await;
        events
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(count().await.len(), 5);
    assert_eq!(app.purge_audit_events().await, 2);
    assert_eq!(count().await, vec!["old-4", "old-3", "old-2"]);
    let recent = all_events(&app, &admin, 100, json!({"action": "user.sign_up"})).await;
    assert!(!recent.is_empty(), "today's events stay");
    app.gql(
        "mutation { updateSettings(input: {auditRetentionDays: 5}) { auditRetentionDays } }",
        json!({}),
        Some(&admin),
    )
    .await
    .data::<Value>("updateSettings");
    assert_eq!(app.purge_audit_events().await, 2);
    assert_eq!(count().await, vec!["old-4"]);
    assert_eq!(
        all_events(&app, &admin, 100, json!({"action": "user.sign_up"}))
            .await
            .len(),
        recent.len()
    );
}

#[tokio::test]
async fn machine_tokens_expire_and_show_when_they_were_last_used() {
    let (app, admin) = admin_app(None).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let created = app
        .gql(
            "mutation($at: DateTime) { createApiToken(input: {name: \"short\", scopes: [\"admin\"], expiresAt: $at}) { secret token { id expiresAt } } }",
            json!({"at": soon}),
            Some(&admin),
        )
        .await
        .data::<Value>("createApiToken");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let list = "{ apiTokens { id name scopes expiresAt lastUsedAt } }";
    let listed = app
        .gql(list, json!({}), Some(&admin))
        .await
        .data::<Value>("apiTokens");
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "short")
        .unwrap()
        .clone();
    assert_eq!(mine["scopes"], json!(["admin"]));
    assert!(mine["expiresAt"].is_string());
    assert_eq!(mine["lastUsedAt"], Value::Null);
    // Used twice within a minute: lastUsedAt is written once.
    app.gql("{ settings { otpLength } }", json!({}), Some(&secret))
        .await
        .data::<Value>("settings");
    let first_use = app
        .gql(list, json!({}), Some(&secret))
        .await
        .data::<Value>("apiTokens");
    let first_use = first_use
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "short")
        .unwrap()["lastUsedAt"]
        .clone();
    assert!(first_use.is_string());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = app
        .gql(list, json!({}), Some(&secret))
        .await
        .data::<Value>("apiTokens");
    let again = again
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "short")
        .unwrap()["lastUsedAt"]
        .clone();
    assert_eq!(again, first_use, "not rewritten within the minute");
    // Past its expiry it is refused, by the API and by introspection.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        app.gql(list, json!({}), Some(&secret)).await.code(),
        "UNAUTHENTICATED"
    );
    let verify = app.machine_token("default", &["verify"]).await;
    assert_eq!(app.introspect(&verify, &secret).await["active"], false);
    // An expiry in the past is refused.
    let past = app
        .gql(
            "mutation { createApiToken(input: {name: \"old\", scopes: [\"admin\"], expiresAt: \"2020-01-01T00:00:00Z\"}) { secret } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(past.error().extensions["field"], "expiresAt");
}

#[tokio::test]
async fn a_session_idle_too_long_is_refused_at_refresh_and_revoked() {
    let (app, admin) = admin_app(None).await;
    app.gql(
        "mutation { updateSettings(input: {sessionIdleSeconds: 60}) { sessionIdleSeconds } }",
        json!({}),
        Some(&admin),
    )
    .await
    .data::<Value>("updateSettings");
    let idle = app.sign_up("idle@example.com").await;
    let busy = app.sign_up("busy@example.com").await;
    let verifier = Verifier::spawn(
        &app.base,
        Some(&app.machine_token("default", &["verify"]).await),
    )
    .await
    .ready()
    .await;
    assert_eq!(verifier.verify(Some(&idle.access_token)).await.0, 200);
    // Two minutes without use, as the database sees it.
    let store = app.store().await;
    sqlx::query("UPDATE sessions SET last_seen_at = last_seen_at - 120000 WHERE id = $1")
        .bind(&idle.session_id)
        .execute(store.pool())
        .await
        .unwrap();
    let refused = app
        .gql(REFRESH, json!({"token": idle.refresh_token}), None)
        .await;
    assert_eq!(refused.code(), "UNAUTHENTICATED");
    assert!(refused.error().message.contains("idle"), "{}", refused.0);
    // Revoked for good, on the feed: the verifier refuses its access token too.
    verifier
        .until(&idle.access_token, 401, Duration::from_secs(1))
        .await;
    let again = app
        .gql(REFRESH, json!({"token": idle.refresh_token}), None)
        .await;
    assert_eq!(again.code(), "UNAUTHENTICATED");
    // A session used recently goes on.
    app.gql(REFRESH, json!({"token": busy.refresh_token}), None)
        .await
        .data::<Value>("refreshSession");
    let events = all_events(&app, &admin, 10, json!({"action": "session.idle_expired"})).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["sessionId"], idle.session_id.as_str());
    assert_eq!(events[0]["actor"]["kind"], "SYSTEM");
    // Off again: null.
    let off = app
        .gql(
            "mutation { updateSettings(input: {sessionIdleSeconds: null}) { sessionIdleSeconds } }",
            json!({}),
            Some(&admin),
        )
        .await
        .data::<Value>("updateSettings");
    assert_eq!(off["sessionIdleSeconds"], Value::Null);
}
