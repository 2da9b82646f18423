//! Tenant settings: `settings` / `updateSettings` (partial, validated whole, nothing written
//! on error), who may call them, `tenantInfo`, the settings taking effect (sign-up closed,
//! methods off, `admins`), and a second replica hearing of a change within a second.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{PASSWORD, SIGN_IN, SIGN_UP, TestApp, spawn_app_with, spawn_on};

const ADMIN: &str = "boss@example.com";

const SETTINGS: &str = "{ settings { signUpEnabled passwordEnabled otpEnabled otpLength otpTtlSeconds \
    maxLoginAttempts allowList denyList sessionTtlSeconds sessionIdleSeconds accessTokenTtlSeconds \
    pendingEmailTtlSeconds passwordResetUrl metadataSchema admins auditRetentionDays allowedOrigins \
    templates { name subject text html } \
    branding { productName companyName logoUrl primaryColor supportEmail mailFrom defaultAvatar \
      light { primaryBackground primaryForeground secondaryBackground secondaryForeground } \
      dark { primaryBackground primaryForeground secondaryBackground secondaryForeground } } } }";

const UPDATE: &str = "mutation($input: SettingsInput!) { updateSettings(input: $input) { otpLength \
    branding { productName primaryColor light { primaryBackground } } } }";

async fn admin_app() -> (TestApp, String) {
    let app = spawn_app_with(|c| c.admin_emails = vec![ADMIN.into()]).await;
    let admin = app.sign_up_admin(ADMIN).await;
    (app, admin.access_token)
}

async fn settings(app: &TestApp, token: &str) -> Value {
    let body = app.gql(SETTINGS, json!({}), Some(token)).await;
    body.data("settings")
}

async fn update(app: &TestApp, token: &str, input: Value) -> crate::support::Gql {
    app.gql(UPDATE, json!({ "input": input }), Some(token))
        .await
}

#[tokio::test]
async fn settings_update_partially_and_keep_what_is_left_out() {
    let (app, admin) = admin_app().await;
    let before = settings(&app, &admin).await;
    assert_eq!(before["otpLength"], 6);
    assert_eq!(before["auditRetentionDays"], 365);
    assert_eq!(before["signUpEnabled"], true);
    assert_eq!(before["branding"]["productName"], Value::Null);

    let first = update(
        &app,
        &admin,
        json!({
            "otpLength": 8,
            "branding": {"productName": "Acme", "primaryColor": "#2f6fed", "light": {"primaryBackground": "#fff"}},
            "templates": [{"name": "signin", "subject": "Your {{ product_name }} code"}],
            "metadataSchema": {"type": "object", "properties": {"plan": {"type": "string"}}},
            "allowedOrigins": ["https://app.example.com", "http://127.0.0.1:5173"],
            "admins": ["other@example.com"],
        }),
    )
    .await;
    assert_eq!(
        first.data::<Value>("updateSettings"),
        json!({"otpLength": 8, "branding": {"productName": "Acme", "primaryColor": "#2f6fed", "light": {"primaryBackground": "#fff"}}})
    );
    // A second partial update changes only what it names.
    update(
        &app,
        &admin,
        json!({"branding": {"light": {"primaryForeground": "#000"}, "companyName": "Acme Inc"}, "otpTtlSeconds": 300}),
    )
    .await
    .data::<Value>("updateSettings");
    let after = settings(&app, &admin).await;
    assert_eq!(after["otpLength"], 8);
    assert_eq!(after["otpTtlSeconds"], 300);
    assert_eq!(after["branding"]["productName"], "Acme");
    assert_eq!(after["branding"]["companyName"], "Acme Inc");
    assert_eq!(
        after["branding"]["light"],
        json!({"primaryBackground": "#fff", "primaryForeground": "#000", "secondaryBackground": null, "secondaryForeground": null})
    );
    assert_eq!(
        after["templates"],
        json!([{"name": "signin", "subject": "Your {{ product_name }} code", "text": null, "html": null}])
    );
    assert_eq!(
        after["metadataSchema"]["properties"]["plan"]["type"],
        "string"
    );
    assert_eq!(
        after["allowedOrigins"],
        json!(["https://app.example.com", "http://127.0.0.1:5173"])
    );
    assert_eq!(after["admins"], json!(["other@example.com"]));
    // null resets to the default.
    update(
        &app,
        &admin,
        json!({"otpLength": null, "branding": {"productName": null}}),
    )
    .await
    .data::<Value>("updateSettings");
    let reset = settings(&app, &admin).await;
    assert_eq!(reset["otpLength"], 6);
    assert_eq!(reset["branding"]["productName"], Value::Null);
    assert_eq!(reset["branding"]["companyName"], "Acme Inc");

    // Recorded in the audit log, naming the fields changed.
    let store = app.store().await;
    let tenant = store.tenant_by_slug("default").await.expect("tenant");
    let events = store
        .audit_events(&tenant.id, "admin.settings_updated", 10)
        .await
        .expect("audit");
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn each_invalid_setting_is_refused_by_name_and_nothing_changes() {
    let (app, admin) = admin_app().await;
    // One valid change alongside each invalid one: it must not be written either.
    let cases = [
        (
            json!({"branding": {"primaryColor": "blue"}}),
            "branding.primaryColor",
        ),
        (
            json!({"branding": {"primaryColor": "#12345"}}),
            "branding.primaryColor",
        ),
        (
            json!({"branding": {"dark": {"secondaryForeground": "#ggg"}}}),
            "branding.dark.secondaryForeground",
        ),
        (
            json!({"branding": {"logoUrl": "http://cdn.example.com/logo.png"}}),
            "branding.logoUrl",
        ),
        (
            json!({"branding": {"logoUrl": "javascript:alert(1)"}}),
            "branding.logoUrl",
        ),
        (
            json!({"branding": {"defaultAvatar": "not a url"}}),
            "branding.defaultAvatar",
        ),
        (
            json!({"branding": {"supportEmail": "nobody"}}),
            "branding.supportEmail",
        ),
        (
            json!({"branding": {"mailFrom": "Acme <>"}}),
            "branding.mailFrom",
        ),
        (
            json!({"branding": {"productName": ""}}),
            "branding.productName",
        ),
        (
            json!({"templates": [{"name": "signup", "html": "{% if %}"}]}),
            "templates.signup.html",
        ),
        (
            json!({"templates": [{"name": "signin", "subject": "{{ code "}]}),
            "templates.signin.subject",
        ),
        (
            json!({"templates": [{"name": "nosuch", "text": "hi"}]}),
            "templates.nosuch",
        ),
        (
            json!({"metadataSchema": {"type": "no-such-type"}}),
            "metadataSchema",
        ),
        (json!({"metadataSchema": [1, 2]}), "metadataSchema"),
        (json!({"otpLength": 2}), "otpLength"),
        (json!({"otpTtlSeconds": 5}), "otpTtlSeconds"),
        (json!({"maxLoginAttempts": 0}), "maxLoginAttempts"),
        (json!({"sessionTtlSeconds": 10}), "sessionTtlSeconds"),
        (json!({"sessionIdleSeconds": 1}), "sessionIdleSeconds"),
        (
            json!({"accessTokenTtlSeconds": 86400}),
            "accessTokenTtlSeconds",
        ),
        (
            json!({"pendingEmailTtlSeconds": 1}),
            "pendingEmailTtlSeconds",
        ),
        (json!({"auditRetentionDays": 0}), "auditRetentionDays"),
        (
            json!({"allowList": ["example.com", "not a domain"]}),
            "allowList.1",
        ),
        (json!({"denyList": ["@"]}), "denyList.0"),
        (json!({"admins": ["boss"]}), "admins.0"),
        (
            json!({"allowedOrigins": ["https://app.example.com/"]}),
            "allowedOrigins.0",
        ),
        (json!({"allowedOrigins": ["*"]}), "allowedOrigins.0"),
        (
            json!({"allowedOrigins": ["http://app.example.com"]}),
            "allowedOrigins.0",
        ),
        (
            json!({"passwordResetUrl": "ftp://example.com/reset"}),
            "passwordResetUrl",
        ),
    ];
    let before = settings(&app, &admin).await;
    for (mut input, field) in cases {
        input["otpLength"] = input.get("otpLength").cloned().unwrap_or(json!(9));
        let answer = update(&app, &admin, input.clone()).await;
        let error = answer.error();
        assert_eq!(error.code, "BAD_USER_INPUT", "{input}: {}", answer.0);
        assert_eq!(error.extensions["field"], field, "{input}: {}", answer.0);
        assert_eq!(
            settings(&app, &admin).await,
            before,
            "{input} changed something"
        );
    }
}

#[tokio::test]
async fn only_admins_of_the_tenant_read_or_change_settings() {
    let (app, admin) = admin_app().await;
    let user = app.sign_up("user@example.com").await;
    let reader = app.machine_token("default", &["verify"]).await;
    let machine_admin = app.machine_token("default", &["admin"]).await;
    for token in [user.access_token.as_str(), reader.as_str()] {
        assert_eq!(
            app.gql(SETTINGS, json!({}), Some(token)).await.code(),
            "FORBIDDEN"
        );
        assert_eq!(
            update(&app, token, json!({"otpLength": 7})).await.code(),
            "FORBIDDEN"
        );
    }
    assert_eq!(
        app.gql(SETTINGS, json!({}), None).await.code(),
        "UNAUTHENTICATED"
    );
    update(&app, &machine_admin, json!({"otpLength": 7}))
        .await
        .data::<Value>("updateSettings");
    assert_eq!(settings(&app, &admin).await["otpLength"], 7);

    // An admin of another tenant cannot touch this one, nor this one's admin that one.
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "acme").await;
    let acme_admin = app.machine_token("acme", &["admin"]).await;
    let (_, cross) = app
        .gql_raw(
            UPDATE,
            json!({"input": {"otpLength": 5}}),
            Some(&acme_admin),
            None,
        )
        .await;
    assert_eq!(cross.code(), "FORBIDDEN");
    let (_, cross) = app
        .gql_raw(
            UPDATE,
            json!({"input": {"otpLength": 5}}),
            Some(&admin),
            Some("acme"),
        )
        .await;
    assert_eq!(cross.code(), "FORBIDDEN");
    assert_eq!(settings(&app, &admin).await["otpLength"], 7);
}

#[tokio::test]
async fn tenant_info_is_public_and_the_switches_take_effect() {
    let (app, admin) = admin_app().await;
    let info = "{ tenantInfo { slug name signInMethods providers signUpEnabled \
        branding { productName companyName logoUrl primaryColor supportEmail light { primaryBackground } } } }";
    let public = app.gql(info, json!({}), None).await;
    assert_eq!(
        public.data::<Value>("tenantInfo"),
        json!({"slug": "default", "name": "Default", "signInMethods": ["password", "otp"], "providers": [],
               "signUpEnabled": true, "branding": {"productName": "Default", "companyName": null, "logoUrl": null,
               "primaryColor": null, "supportEmail": null, "light": {"primaryBackground": null}}})
    );
    // Nothing of the mail or account settings is public.
    let secret = app
        .gql("{ tenantInfo { branding { mailFrom } } }", json!({}), None)
        .await;
    assert_eq!(secret.code(), "BAD_USER_INPUT");

    update(
        &app,
        &admin,
        json!({"signUpEnabled": false, "otpEnabled": false,
               "branding": {"productName": "Acme", "logoUrl": "https://cdn.example.com/l.png", "light": {"primaryBackground": "#abc"}}}),
    )
    .await
    .data::<Value>("updateSettings");
    let public = app
        .gql(info, json!({}), None)
        .await
        .data::<Value>("tenantInfo");
    assert_eq!(public["signInMethods"], json!(["password"]));
    assert_eq!(public["signUpEnabled"], false);
    assert_eq!(public["branding"]["productName"], "Acme");
    assert_eq!(
        public["branding"]["logoUrl"],
        "https://cdn.example.com/l.png"
    );
    assert_eq!(public["branding"]["light"]["primaryBackground"], "#abc");

    let closed = app
        .gql(
            SIGN_UP,
            json!({"email": "new@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(closed.code(), "FORBIDDEN");
    let otp = app
        .gql(
            "mutation { requestOtp(input: {email: \"new@example.com\"}) { challengeId } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(otp.code(), "FORBIDDEN");
    // Existing accounts still sign in with their password…
    app.signed_in(ADMIN, PASSWORD).await;
    // …until passwords are switched off too.
    update(&app, &admin, json!({"passwordEnabled": false}))
        .await
        .data::<Value>("updateSettings");
    let off = app
        .gql(SIGN_IN, json!({"email": ADMIN, "password": PASSWORD}), None)
        .await;
    assert_eq!(off.code(), "FORBIDDEN");
}

#[tokio::test]
async fn the_admins_setting_grants_the_role_at_the_next_proven_sign_in() {
    let app = spawn_app_with(|_| {}).await;
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "acme").await;
    let acme_admin = app.machine_token("acme", &["admin"]).await;
    let (_, set) = app
        .gql_raw(
            UPDATE,
            json!({"input": {"admins": ["Chief@Example.com"]}}),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    set.data::<Value>("updateSettings");
    let first = app.sign_up_in("chief@example.com", Some("acme")).await;
    assert!(first.roles.is_empty(), "unproven address: no role");
    app.prove_address("chief@example.com").await;
    let (_, again) = app
        .gql_raw(
            SIGN_IN,
            json!({"email": "chief@example.com", "password": PASSWORD}),
            None,
            Some("acme"),
        )
        .await;
    let again: crate::support::AuthPayload = again.data("signIn");
    assert_eq!(again.roles, vec!["admin".to_owned()]);
    // The same address in the default tenant is nobody's admin.
    let home = app.sign_up("chief@example.com").await;
    assert!(home.roles.is_empty());
    // Taken off the list, the role goes at the next sign-in.
    let (_, unset) = app
        .gql_raw(
            UPDATE,
            json!({"input": {"admins": []}}),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    unset.data::<Value>("updateSettings");
    let (_, later) = app
        .gql_raw(
            SIGN_IN,
            json!({"email": "chief@example.com", "password": PASSWORD}),
            None,
            Some("acme"),
        )
        .await;
    let later: crate::support::AuthPayload = later.data("signIn");
    assert!(later.roles.is_empty());
}

/// Two replicas on one PostgreSQL database: a change made through one is in force on the
/// other within a second (its cache hears of it through NOTIFY). SQLite runs one process.
#[tokio::test]
async fn a_change_reaches_another_replica_within_a_second() {
    let (app, admin) = admin_app().await;
    if !app.db.is_postgres() {
        eprintln!("skipped: replicas share a database only on PostgreSQL");
        return;
    }
    let other = spawn_on(app.db.share(), |c| c.admin_emails = vec![ADMIN.into()]).await;
    let info = "{ tenantInfo { signUpEnabled branding { productName } } }";
    // The other replica has the tenant cached.
    let cached = other
        .gql(info, json!({}), None)
        .await
        .data::<Value>("tenantInfo");
    assert_eq!(cached["branding"]["productName"], "Default");
    // Let its listener connect before the change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    update(
        &app,
        &admin,
        json!({"signUpEnabled": false, "branding": {"productName": "Acme"}}),
    )
    .await
    .data::<Value>("updateSettings");
    let changed = Instant::now();
    loop {
        let seen = other
            .gql(info, json!({}), None)
            .await
            .data::<Value>("tenantInfo");
        if seen["branding"]["productName"] == "Acme" {
            assert_eq!(seen["signUpEnabled"], false);
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "the other replica still shows {seen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = other
        .gql(
            SIGN_UP,
            json!({"email": "new@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN");
}

#[tokio::test]
async fn with_sign_up_closed_a_code_goes_only_to_existing_accounts_and_the_answer_is_the_same() {
    let smtp = crate::support::SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(move |c| {
        c.admin_emails = vec![ADMIN.into()];
        c.smtp_url = Some(url);
    })
    .await;
    let admin = app.sign_up_admin(ADMIN).await.access_token;
    app.sign_up("member@example.com").await;
    update(&app, &admin, json!({"signUpEnabled": false}))
        .await
        .data::<Value>("updateSettings");
    let request = "mutation($e: String!) { requestOtp(input: {email: $e}) { codeLength } }";
    let unknown = app
        .gql(request, json!({"e": "stranger@example.com"}), None)
        .await;
    let known = app
        .gql(request, json!({"e": "member@example.com"}), None)
        .await;
    assert_eq!(unknown.0, known.0, "the answers tell the addresses apart");
    assert!(known.0["errors"].is_null(), "{}", known.0);
    // The member gets a code; by then the stranger would have had one too, but nothing went.
    smtp.wait_for("member@example.com", Duration::from_secs(10))
        .await;
    let store = app.store().await;
    let (queued,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM mail_outbox WHERE recipient = 'stranger@example.com'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(
        queued, 0,
        "a code was mailed to an address that cannot sign up"
    );
}
