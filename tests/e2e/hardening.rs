//! The attacks of the security review, each as a test against the real app over HTTP (and
//! real SMTP where a proof of address is the point): power taken from what a caller holds,
//! never from what it asks for; addresses that count only once proven; limits that hold
//! for aliases, batches and concurrent requests; machine endpoints closed to the wrong
//! callers; revocations that commit with their feed entries and reach every reader.

use std::time::Duration;

use serde_json::{Value, json};

use crate::otp::{request as request_code, verify as verify_code};
use crate::support::{
    AuthPayload, PASSWORD, REFRESH, SIGN_IN, SIGN_UP, SmtpServer, TestApp, code, spawn_app,
    spawn_app_with, spawn_on,
};

const ME: &str = "{ me { id roles } }";
const CREATE_TOKEN: &str = "mutation($s: [String!]!) { createApiToken(input: {name: \"t\", scopes: $s}) { id secret token { scopes } } }";
const DELETE_TOKEN: &str = "mutation($id: ID!) { deleteApiToken(id: $id) }";

/// The revocation feed as a `verify,platform` reader sees it.
async fn feed(app: &TestApp) -> Vec<Value> {
    let verify = app.machine_token("default", &["verify", "platform"]).await;
    let body = app.get_json("/internal/revocations", Some(&verify)).await;
    body["entries"].as_array().expect("entries").clone()
}

fn has_entry(entries: &[Value], kind: &str, id: &str) -> bool {
    entries.iter().any(|e| e["kind"] == kind && e["id"] == id)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let store = app.store().await;
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(store.pool())
        .await
        .expect("count")
}

// ----- 1. scopes a caller holds ---------------------------------------------------------

#[tokio::test]
async fn a_caller_grants_only_the_scopes_it_holds() {
    let app = spawn_app_with(|c| c.admin_emails = vec!["boss@example.com".into()]).await;
    let boss = app.sign_up_admin("boss@example.com").await;
    let tokens_before = count(&app, "SELECT COUNT(*) FROM api_tokens").await;

    // A tenant admin (a user) holds admin, connections and verify — never platform.
    for scopes in [json!(["platform"]), json!(["admin", "platform"])] {
        let body = app
            .gql(CREATE_TOKEN, json!({"s": scopes}), Some(&boss.access_token))
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{scopes}: {body}");
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM api_tokens").await,
        tokens_before,
        "nothing created"
    );
    let granted = app
        .gql(
            CREATE_TOKEN,
            json!({"s": ["admin", "connections", "verify"]}),
            Some(&boss.access_token),
        )
        .await;
    assert!(granted["errors"].is_null(), "{granted}");

    // A machine token holds exactly its own scopes.
    let admin_only = app.machine_token("default", &["admin"]).await;
    for scopes in [
        json!(["verify"]),
        json!(["platform"]),
        json!(["admin", "connections"]),
    ] {
        let body = app
            .gql(CREATE_TOKEN, json!({"s": scopes}), Some(&admin_only))
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{scopes}: {body}");
    }
    let same = app
        .gql(CREATE_TOKEN, json!({"s": ["admin"]}), Some(&admin_only))
        .await;
    assert!(same["errors"].is_null(), "{same}");

    // The attack of the review: a platform token minted by a tenant admin, then used in
    // another tenant. It cannot be minted, so the tenant wall holds.
    let platform = app.machine_token("default", &["platform"]).await;
    let created = app
        .gql_raw(
            "mutation { createTenant(input: {slug: \"acme\", name: \"Acme\"}) { slug } }",
            json!({}),
            Some(&platform),
            None,
        )
        .await
        .1;
    assert!(created["errors"].is_null(), "{created}");
    let acme_admin = app.machine_token("acme", &["admin"]).await;
    let (_, body) = app
        .gql_raw(
            CREATE_TOKEN,
            json!({"s": ["platform"]}),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let (_, body) = app
        .gql_raw(
            "{ tenants { slug } }",
            json!({}),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");

    // Platform tokens are made on the command line or by another platform token, and a
    // tenant admin cannot withdraw them.
    let platform_admin = app.machine_token("default", &["platform", "admin"]).await;
    let minted = app
        .gql(
            CREATE_TOKEN,
            json!({"s": ["platform"]}),
            Some(&platform_admin),
        )
        .await;
    assert!(minted["errors"].is_null(), "{minted}");
    let platform_id = minted["data"]["createApiToken"]["id"].clone();
    let body = app
        .gql(
            DELETE_TOKEN,
            json!({"id": platform_id}),
            Some(&boss.access_token),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            DELETE_TOKEN,
            json!({"id": platform_id}),
            Some(&platform_admin),
        )
        .await;
    assert_eq!(body["data"]["deleteApiToken"], true, "{body}");
}

// ----- 2 and 3. addresses count once proven ---------------------------------------------

async fn app_with_mail_and_admins(smtp: &SmtpServer, admins: &[&str]) -> TestApp {
    let url = smtp.url();
    let admins: Vec<String> = admins.iter().map(|a| (*a).to_owned()).collect();
    spawn_app_with(move |config| {
        config.smtp_url = Some(url);
        config.admin_emails = admins;
    })
    .await
}

#[tokio::test]
async fn configured_admin_addresses_count_only_once_proven_and_removal_takes_the_role_back() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail_and_admins(&smtp, &["root@example.com"]).await;
    // The review's attack: a password sign-up with a listed address, in another case.
    let signed_up = app.sign_up("ROOT@Example.com").await;
    assert_eq!(signed_up.roles, Vec::<String>::new(), "{signed_up:?}");
    let me = app.gql(ME, json!({}), Some(&signed_up.access_token)).await;
    assert_eq!(me["data"]["me"]["roles"], json!([]));

    // Proven by a code through our own mail: the role comes with that sign-in.
    let (challenge, code_sent, _) = request_code(&app, &smtp, "root@example.com").await;
    let proven = verify_code(&app, "root@example.com", &challenge, &code_sent).await;
    assert!(proven["errors"].is_null(), "{proven}");
    let token = &proven.data::<AuthPayload>("verifyOtp").access_token;
    let me = app.gql(ME, json!({}), Some(token)).await;
    assert_eq!(me["data"]["me"]["roles"], json!(["admin"]), "{me}");
    let configured = count(
        &app,
        "SELECT COUNT(*) FROM users WHERE configured_roles = '[\"admin\"]'",
    )
    .await;
    assert_eq!(configured, 1, "recorded as coming from configuration");

    // Off the list: the next sign-in takes the role back.
    let db = app.stop().await;
    let app = spawn_on(db, |config| config.smtp_url = Some(smtp.url())).await;
    let (challenge, code_sent, _) = request_code(&app, &smtp, "root@example.com").await;
    let again = verify_code(&app, "root@example.com", &challenge, &code_sent).await;
    let token = &again.data::<AuthPayload>("verifyOtp").access_token;
    let me = app.gql(ME, json!({}), Some(token)).await;
    assert_eq!(me["data"]["me"]["roles"], json!([]), "{me}");
}

#[tokio::test]
async fn a_code_sign_in_takes_back_an_account_pre_hijacked_by_a_password_sign_up() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail_and_admins(&smtp, &[]).await;
    let carol = "carol@example.com";
    // The attacker signs up with Carol's address and keeps a second session too.
    let attacker = app.sign_up(carol).await;
    let attacker_too = app.signed_in(carol, PASSWORD).await;
    let unverified = count(
        &app,
        "SELECT COUNT(*) FROM user_emails WHERE email = 'carol@example.com' AND verified_at IS NULL",
    )
    .await;
    assert_eq!(
        unverified, 1,
        "a password sign-up leaves its address unverified"
    );

    // The real Carol signs in by email code and lands in the account…
    let (challenge, code_sent, _) = request_code(&app, &smtp, carol).await;
    let body = verify_code(&app, carol, &challenge, &code_sent).await;
    assert!(body["errors"].is_null(), "{body}");
    let carols: AuthPayload = body.data("verifyOtp");
    assert_eq!(carols.user_id, attacker.user_id);
    // …but the attacker's password no longer works, and neither do their sessions.
    assert_eq!(
        code(&app.sign_in(carol, PASSWORD).await),
        "INVALID_CREDENTIALS"
    );
    for session in [&attacker, &attacker_too] {
        assert_eq!(
            code(&app.gql(ME, json!({}), Some(&session.access_token)).await),
            "UNAUTHENTICATED"
        );
        let refreshed = app
            .gql(REFRESH, json!({"token": session.refresh_token}), None)
            .await;
        assert_eq!(code(&refreshed), "UNAUTHENTICATED", "{refreshed}");
    }
    // Verifiers hear of it: a session entry for each of the attacker's sessions.
    let entries = feed(&app).await;
    for session in [&attacker, &attacker_too] {
        let id = &session.session_id;
        assert!(has_entry(&entries, "session", id), "{entries:?}");
    }
    // Carol's own session works; the address is verified and the takeover audited.
    let me = app.gql(ME, json!({}), Some(&carols.access_token)).await;
    assert!(me["errors"].is_null(), "{me}");
    let audited = count(
        &app,
        "SELECT COUNT(*) FROM audit_events WHERE action = 'user.email_verified' \
         AND detail LIKE '%\"password_removed\":true%'",
    )
    .await;
    assert_eq!(audited, 1);
    // A second code sign-in on a proven address ends nothing.
    let (challenge, code_sent, _) = request_code(&app, &smtp, carol).await;
    let second = verify_code(&app, carol, &challenge, &code_sent).await;
    assert!(second["errors"].is_null(), "{second}");
    let me = app.gql(ME, json!({}), Some(&carols.access_token)).await;
    assert!(
        me["errors"].is_null(),
        "the first code session goes on: {me}"
    );
}

// ----- 4 and 5. limits that hold for batches and concurrency ------------------------------

#[tokio::test]
async fn sign_ups_are_limited_per_address_and_one_request_runs_at_most_four_hashes() {
    let app = spawn_app().await;
    app.sign_up("taken@example.com").await;
    // Testing whether an address is taken is limited per address: 5 per 10 minutes.
    let mut codes = Vec::new();
    for _ in 0..6 {
        let body = app
            .gql(
                SIGN_UP,
                json!({"email": "taken@example.com", "password": PASSWORD}),
                None,
            )
            .await;
        codes.push(code(&body).to_owned());
    }
    assert_eq!(codes[..4], ["CONFLICT"; 4], "{codes:?}");
    assert_eq!(codes[5], "RATE_LIMITED", "{codes:?}");

    // Ten sign-ups in one batch: four run, six are refused before any work.
    let batch: Vec<Value> = (0..10)
        .map(|i| {
            json!({"query": SIGN_UP, "variables": {"email": format!("batch{i}@example.com"), "password": PASSWORD}})
        })
        .collect();
    let (status, answers) = app.gql_batch(&batch).await;
    assert_eq!(status, 200);
    let answers = answers.as_array().unwrap();
    let ok = answers.iter().filter(|a| a["errors"].is_null()).count();
    let refused = answers
        .iter()
        .filter(|a| a["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT")
        .count();
    assert_eq!((ok, refused), (4, 6), "{answers:?}");
    let created = count(
        &app,
        "SELECT COUNT(*) FROM user_emails WHERE email LIKE 'batch%'",
    )
    .await;
    assert_eq!(created, 4, "nothing half written");

    // Aliases and batch items share the budget: two operations of three aliases each.
    let aliased = |tag: &str| {
        let fields: String = (0..3)
            .map(|i| format!("a{i}: signIn(input: {{email: \"{tag}{i}@example.com\", password: \"wrong password\"}}) {{ accessToken }} "))
            .collect();
        json!({"query": format!("mutation {{ {fields}}}")})
    };
    let (_, answers) = app.gql_batch(&[aliased("x"), aliased("y")]).await;
    let codes: Vec<&str> = answers
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["errors"].as_array().cloned().unwrap_or_default())
        .map(|e| match e["extensions"]["code"].as_str() {
            Some("INVALID_CREDENTIALS") => "hashed",
            Some("BAD_USER_INPUT") => "refused",
            _ => "other",
        })
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "hashed").count(),
        4,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "refused").count(),
        2,
        "{codes:?}"
    );
}

#[tokio::test]
async fn parallel_attempts_cannot_slip_past_the_lockout() {
    let app = spawn_app().await;
    let email = "target@example.com";
    app.sign_up(email).await;
    // Ten wrong passwords at once (ten requests in flight), then the right one.
    let attempts = (0..10).map(|i| {
        let password = format!("wrong password {i}");
        let app = &app;
        async move {
            app.gql(SIGN_IN, json!({"email": email, "password": password}), None)
                .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let codes: Vec<&str> = answers
        .iter()
        .map(|a| {
            a["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("none")
        })
        .collect();
    let checked = codes
        .iter()
        .filter(|c| **c == "INVALID_CREDENTIALS")
        .count();
    let limited = codes.iter().filter(|c| **c == "RATE_LIMITED").count();
    assert_eq!(
        (checked, limited),
        (5, 5),
        "five checked before the lock: {codes:?}"
    );
    let right = app.sign_in(email, PASSWORD).await;
    assert_eq!(code(&right), "RATE_LIMITED", "{right}");

    // Right passwords at once (tabs, devices) are never refused by the count they share.
    let many = "many@example.com";
    app.sign_up(many).await;
    for _ in 0..2 {
        let attempts = (0..4).map(|_| app.sign_in(many, PASSWORD));
        for body in futures_util::future::join_all(attempts).await {
            assert!(body["errors"].is_null(), "{body}");
        }
    }
    // The same within one batched POST, whose operations run side by side: after four
    // failures only one more attempt is checked, however many the batch holds.
    let other = "other@example.com";
    app.sign_up(other).await;
    for i in 0..4 {
        let body = app.sign_in(other, &format!("wrong password {i}")).await;
        assert_eq!(code(&body), "INVALID_CREDENTIALS");
    }
    let batch: Vec<Value> = ["wrong again", "still wrong", "wrong as ever"]
        .iter()
        .map(|p| json!({"query": SIGN_IN, "variables": {"email": other, "password": p}}))
        .collect();
    let (_, answers) = app.gql_batch(&batch).await;
    let mut codes: Vec<&str> = answers.as_array().unwrap().iter().map(code).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        ["INVALID_CREDENTIALS", "RATE_LIMITED", "RATE_LIMITED"],
        "{answers}"
    );
    let right = app.sign_in(other, PASSWORD).await;
    assert_eq!(code(&right), "RATE_LIMITED", "{right}");
}

// ----- 9. no schema leak with introspection off ------------------------------------------

#[tokio::test]
async fn no_field_suggestions_when_introspection_is_off() {
    let closed = spawn_app_with(|c| {
        c.graphiql = false;
        c.introspection = Some(false);
    })
    .await;
    let body = closed.gql("{ sesions { id } }", json!({}), None).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("Did you mean"), "{message}");
    assert!(!message.contains("sessions"), "{message}");
    // With introspection on, suggestions help developers as before.
    let open = spawn_app().await;
    let body = open.gql("{ sesions { id } }", json!({}), None).await;
    assert!(body.to_string().contains("Did you mean"), "{body}");
}

// ----- 12. a grace of 0 is off ------------------------------------------------------------

#[tokio::test]
async fn with_no_grace_a_duplicate_refresh_is_reuse_even_in_one_batch_or_at_once() {
    let app = spawn_app_with(|c| c.refresh_grace_seconds = 0).await;
    let first = app.sign_up("batch@example.com").await;
    let token = first.refresh_token.clone();
    let batch = vec![
        json!({"query": REFRESH, "variables": {"token": token}}),
        json!({"query": REFRESH, "variables": {"token": token}}),
    ];
    let (_, answers) = app.gql_batch(&batch).await;
    let ok: Vec<&Value> = answers
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["errors"].is_null())
        .collect();
    assert!(ok.len() <= 1, "{answers}");
    let winner = ok.first().map(|a| {
        a["data"]["refreshSession"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    if let Some(winner) = winner {
        assert_eq!(
            code(&app.gql(ME, json!({}), Some(&winner)).await),
            "UNAUTHENTICATED",
            "the reuse ended the session"
        );
    }

    for _ in 0..4 {
        let first = app.signed_in("batch@example.com", PASSWORD).await;
        let token = first.refresh_token.clone();
        let (a, b) = tokio::join!(
            app.gql(REFRESH, json!({"token": token}), None),
            app.gql(REFRESH, json!({"token": token}), None)
        );
        let wins = [&a, &b].iter().filter(|x| x["errors"].is_null()).count();
        assert!(wins <= 1, "{a} {b}");
        let session = &first.session_id;
        let revoked = count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM sessions WHERE id = '{session}' AND revoked_at IS NOT NULL"
            ),
        )
        .await;
        assert_eq!(revoked, 1, "the duplicate is reuse: the session ends");
    }
}

// ----- 6. machine endpoints ---------------------------------------------------------------

/// GET `/internal/revocations` with these headers; the status.
async fn feed_status(app: &TestApp, bearer: Option<&str>, headers: &[(&str, &str)]) -> u16 {
    let mut request = app.client.get(format!("{}/internal/revocations", app.base));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("GET").status().as_u16()
}

/// POST `/introspect` for `token`; status and body.
async fn introspect(
    app: &TestApp,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    token: &str,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/introspect", app.base))
        .form(&[("token", token)]);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn machine_endpoints_need_a_verify_token_and_the_exemption_never_covers_proxied_requests() {
    let app = spawn_app().await;
    let user = app.sign_up("someone@example.com").await;
    // The loopback exemption is on by default only on SQLite (with a loopback listener).
    let exempt = if app.db.is_postgres() { 401 } else { 200 };
    assert_eq!(feed_status(&app, None, &[]).await, exempt);
    assert_eq!(
        introspect(&app, None, &[], &user.access_token).await.0,
        exempt
    );
    // Never for a forwarded request, whatever its peer.
    for forwarded in [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9"),
        ("x-real-ip", "203.0.113.9"),
        ("x-forwarded-host", "auth.example.com"),
    ] {
        assert_eq!(
            feed_status(&app, None, &[forwarded]).await,
            401,
            "{forwarded:?}"
        );
        assert_eq!(
            introspect(&app, None, &[forwarded], &user.access_token)
                .await
                .0,
            401
        );
    }
    // A token without scope verify is not enough; an access token is not a machine token.
    let admin = app.machine_token("default", &["admin"]).await;
    assert_eq!(feed_status(&app, Some(&admin), &[]).await, 403);
    assert_eq!(
        introspect(&app, Some(&admin), &[], &user.access_token)
            .await
            .0,
        403
    );
    assert_eq!(feed_status(&app, Some(&user.access_token), &[]).await, 401);
    assert_eq!(feed_status(&app, Some("mt_forged"), &[]).await, 401);
    let verify = app.machine_token("default", &["verify"]).await;
    assert_eq!(
        feed_status(&app, Some(&verify), &[("x-forwarded-for", "203.0.113.9")]).await,
        200
    );
    let (status, answer) = introspect(&app, Some(&verify), &[], &user.access_token).await;
    assert_eq!((status, &answer["active"]), (200, &json!(true)), "{answer}");

    // Through a trusted same-host proxy, or with the setting off: no exemption.
    let db = app.stop().await;
    let proxied = spawn_on(db, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    assert_eq!(feed_status(&proxied, None, &[]).await, 401);
    let db = proxied.stop().await;
    let off = spawn_on(db, |c| c.internal_loopback_no_token = Some(false)).await;
    assert_eq!(feed_status(&off, None, &[]).await, 401);
    assert_eq!(feed_status(&off, Some(&verify), &[]).await, 200);
}

#[tokio::test]
async fn a_verify_token_reads_its_own_tenant_only_unless_it_holds_platform() {
    let app = spawn_app().await;
    let platform = app.machine_token("default", &["platform"]).await;
    let made = app
        .gql(
            "mutation { createTenant(input: {slug: \"acme\", name: \"Acme\"}) { slug } }",
            json!({}),
            Some(&platform),
        )
        .await;
    assert!(made["errors"].is_null(), "{made}");
    let ours = app.sign_up("ours@example.com").await;
    let theirs = app.sign_up_in("theirs@example.com", Some("acme")).await;
    let acme_admin = app.machine_token("acme", &["admin"]).await;
    // Revocations in both tenants.
    for (payload, tenant) in [(&ours, None), (&theirs, Some("acme"))] {
        let (_, body) = app
            .gql_raw(
                "mutation { signOut }",
                json!({}),
                Some(&payload.access_token),
                tenant,
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let ours = app.signed_in("ours@example.com", PASSWORD).await;

    let default_verify = app.machine_token("default", &["verify"]).await;
    let everything = app.machine_token("default", &["verify", "platform"]).await;
    // Introspection: another tenant's valid token is as inactive as a forged one.
    let (_, answer) = introspect(&app, Some(&default_verify), &[], &ours.access_token).await;
    assert_eq!(answer["active"], true, "{answer}");
    let theirs_again = app.sign_up_in("theirs2@example.com", Some("acme")).await;
    let (_, answer) =
        introspect(&app, Some(&default_verify), &[], &theirs_again.access_token).await;
    assert_eq!(answer, json!({"active": false}));
    let (_, answer) = introspect(&app, Some(&default_verify), &[], &acme_admin).await;
    assert_eq!(answer, json!({"active": false}));
    let (_, answer) = introspect(&app, Some(&everything), &[], &theirs_again.access_token).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["tid"], "acme");

    // The feed: its own tenant's entries (and key entries) only.
    let listed = app
        .get_json("/internal/revocations", Some(&default_verify))
        .await;
    let tenants: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] != "key")
        .map(|e| e["tenant"].as_str().unwrap())
        .collect();
    assert!(
        !tenants.is_empty() && tenants.iter().all(|t| *t == "default"),
        "{listed}"
    );
    let all = app
        .get_json("/internal/revocations", Some(&everything))
        .await;
    assert!(
        all["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["tenant"] == "acme"),
        "{all}"
    );
}

// ----- 11. a revocation commits with its feed entry ---------------------------------------

async fn break_the_feed(app: &TestApp, broken: bool) {
    let store = app.store().await;
    let statements: &[&str] = match (app.db.is_postgres(), broken) {
        // Revocation entries fail; `session_created` ones (written by every sign-in, revoking
        // nothing) still go in, so that the account can be shown intact by signing in.
        (false, true) => &[
            "CREATE TRIGGER fail_revocations BEFORE INSERT ON revocations \
             WHEN NEW.kind <> 'session_created' \
             BEGIN SELECT RAISE(ABORT, 'feed down'); END",
        ],
        (false, false) => &["DROP TRIGGER fail_revocations"],
        (true, true) => &[
            "CREATE FUNCTION fail_revocations() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'feed down'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER fail_revocations BEFORE INSERT ON revocations \
             FOR EACH ROW WHEN (NEW.kind <> 'session_created') EXECUTE FUNCTION fail_revocations()",
        ],
        (true, false) => &["DROP TRIGGER fail_revocations ON revocations"],
    };
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
            .execute(store.pool())
            .await
            .expect("trigger statement");
    }
}

#[tokio::test]
async fn a_revocation_whose_feed_entry_fails_is_not_half_done_and_can_be_retried() {
    let app = spawn_app().await;
    let email = "outbox@example.com";
    let here = app.sign_up(email).await;
    let there = app.signed_in(email, PASSWORD).await;
    let there_id = there.session_id.clone();
    const REVOKE: &str = "mutation($id: ID!) { revokeSession(id: $id) }";

    break_the_feed(&app, true).await;
    let body = app
        .gql(REVOKE, json!({"id": there_id}), Some(&here.access_token))
        .await;
    assert_eq!(code(&body), "INTERNAL", "{body}");
    assert!(
        !body.to_string().contains("feed down"),
        "no database text: {body}"
    );
    // Not revoked without its entry: the session still works, so the retry has work to do.
    assert!(app.gql(ME, json!({}), Some(&there.access_token)).await["errors"].is_null());
    let body = app
        .gql(
            "mutation { deleteAccount }",
            json!({}),
            Some(&here.access_token),
        )
        .await;
    assert_eq!(code(&body), "INTERNAL");
    assert!(
        app.sign_in(email, PASSWORD).await["errors"].is_null(),
        "account intact"
    );

    break_the_feed(&app, false).await;
    let body = app
        .gql(REVOKE, json!({"id": there_id}), Some(&here.access_token))
        .await;
    assert_eq!(body["data"]["revokeSession"], true, "{body}");
    assert!(has_entry(&feed(&app).await, "session", &there_id));
    assert_eq!(
        code(&app.gql(ME, json!({}), Some(&there.access_token)).await),
        "UNAUTHENTICATED"
    );
}

// ----- 13. out-of-order commits on PostgreSQL --------------------------------------------

#[tokio::test]
async fn an_entry_that_commits_after_a_later_one_still_reaches_a_reader_resuming_past_it() {
    let app = spawn_app().await;
    if !app.db.is_postgres() {
        // SQLite has one writer at a time: seqs are handed out in commit order.
        return;
    }
    let store = app.store().await;
    let verify = app.machine_token("default", &["verify"]).await;
    let user = app.sign_up("order@example.com").await;
    let other = app.signed_in("order@example.com", PASSWORD).await;

    // Transaction A takes a seq and does not commit yet…
    let mut early = store.pool().begin().await.unwrap();
    let early_seq: i64 = sqlx::query_scalar(
        "INSERT INTO revocations (tenant, kind, subject, iat_cutoff, expires_at, created_at) \
         VALUES ('default', 'session', 'committed-late', NULL, $1, $2) RETURNING seq",
    )
    .bind(i64::MAX / 2)
    .bind(auth_api::domain::now_ms())
    .fetch_one(&mut *early)
    .await
    .unwrap();
    // …while B, with a larger seq, commits.
    let body = app
        .gql(
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({"id": other.session_id}),
            Some(&user.access_token),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // A verifier connecting now is given a cursor past A's seq.
    let listed = app.get_json("/internal/revocations", Some(&verify)).await;
    let cursor = listed["cursor"].as_i64().unwrap();
    assert!(cursor > early_seq, "{listed}");
    assert!(!listed.to_string().contains("committed-late"));
    let mut stream = app
        .client
        .get(format!("{}/internal/revocations/stream", app.base))
        .bearer_auth(&verify)
        .header("last-event-id", cursor.to_string())
        .send()
        .await
        .unwrap();
    early.commit().await.unwrap();
    // A reaches it all the same.
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("committed-late") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "stream said: {seen}");
    assert!(seen.contains(&format!("id: {early_seq}")), "{seen}");
}

// ----- 14. a refresh racing a user cut-off ------------------------------------------------

/// Whether the feed refuses an access token: its session's entry, or a user cut-off at or
/// after its `iat`.
fn covered(entries: &[Value], token: &str) -> bool {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("claims");
    entries.iter().any(|e| {
        (e["kind"] == "session" && e["id"] == claims["sid"])
            || (e["kind"] == "user"
                && e["id"] == claims["sub"]
                && e["iat_cutoff"].as_i64() >= claims["iat"].as_i64())
    })
}

#[tokio::test]
async fn no_refresh_racing_revoke_all_sessions_mints_a_token_verifiers_accept() {
    // Sixteen sign-ins of one address: above its rate limit, which is not the subject here.
    let app = spawn_app_with(|c| c.rate_limit_factor = 0.0).await;
    let email = "racer@example.com";
    app.sign_up(email).await;
    let mut minted = Vec::new();
    for _ in 0..8 {
        let victim = app.signed_in(email, PASSWORD).await;
        let caller = app.signed_in(email, PASSWORD).await;
        let (refreshed, revoked) = tokio::join!(
            app.gql(REFRESH, json!({"token": victim.refresh_token}), None),
            app.gql(
                "mutation { revokeAllSessions }",
                json!({}),
                Some(&caller.access_token)
            )
        );
        assert!(revoked["errors"].is_null(), "{revoked}");
        if let Some(token) = refreshed["data"]["refreshSession"]["accessToken"].as_str() {
            minted.push(token.to_owned());
        }
        minted.push(victim.access_token.clone());
        minted.push(caller.access_token.clone());
        // Every session ended has its own entry, not just the user's cut-off.
        let entries = feed(&app).await;
        for session in [&victim, &caller] {
            assert!(has_entry(&entries, "session", &session.session_id));
        }
    }
    let entries = feed(&app).await;
    for token in &minted {
        assert!(covered(&entries, token), "a token outlives its revocation");
        assert_eq!(
            code(&app.gql(ME, json!({}), Some(token)).await),
            "UNAUTHENTICATED"
        );
    }
}
