//! Several addresses per account, mail through the real SMTP test server: `addEmail` (pending,
//! a code mailed with `approveNewEmail`), `verifyEmail` (wrong, expired, reused codes; attempts
//! limited), `removeEmail` (previous, notice mailed), `setPrimaryEmail` (notice to the old
//! primary), the one-active-account-per-address rule as `CONFLICT`, signing in with any active
//! address, and `user(idOrEmail)` showing nothing private.

use std::time::Duration;

use serde_json::{Value, json};

use crate::profile::audit_details;
use crate::support::{Gql, PASSWORD, SmtpServer, TestApp, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);
const ADD: &str = "mutation($e: String!) { addEmail(email: $e) { id emails { primary active pending { email createdAt } previous { email } } } }";
const VERIFY: &str = "mutation($e: String!, $c: String!) { verifyEmail(input: {email: $e, code: $c}) { emails { primary active pending { email } previous { email } } } }";
const REMOVE: &str = "mutation($e: String!) { removeEmail(email: $e) { emails { primary active pending { email } previous { email } } } }";
const PRIMARY: &str =
    "mutation($e: String!) { setPrimaryEmail(email: $e) { emails { primary active } } }";
const EMAILS: &str = "{ me { emails { primary active pending { email } previous { email } } } }";
const USER: &str =
    "query($k: String!) { user(idOrEmail: $k) { id name { first last display } avatar } }";

async fn app_with_mail(smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    spawn_app_with(move |config| config.smtp_url = Some(url)).await
}

async fn emails(app: &TestApp, bearer: &str) -> Value {
    let body = app.gql(EMAILS, json!({}), Some(bearer)).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["me"]["emails"].clone()
}

async fn call(app: &TestApp, op: &str, vars: Value, bearer: &str) -> Gql {
    app.gql(op, vars, Some(bearer)).await
}

/// Adds `email` and returns the code mailed to it.
async fn add(app: &TestApp, smtp: &SmtpServer, bearer: &str, email: &str) -> String {
    let body = call(app, ADD, json!({"e": email}), bearer).await;
    assert!(body["errors"].is_null(), "{body}");
    let normalised = email.trim().to_lowercase();
    let mail = smtp.wait_for(&normalised, WAIT).await;
    assert!(
        mail.subject.starts_with("Confirm your email"),
        "{}",
        mail.subject
    );
    assert!(mail.text.contains(&normalised), "{}", mail.text);
    mail.code()
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10))
        .collect()
}

#[tokio::test]
async fn an_added_address_is_pending_until_its_mailed_code_confirms_it() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let ada = app.sign_up("ada@example.com").await;
    let bearer = &ada.access_token;
    let second = "ada.work@example.org";

    let code = add(&app, &smtp, bearer, "  Ada.Work@Example.ORG ").await;
    let shown = emails(&app, bearer).await;
    assert_eq!(shown["active"], json!(["ada@example.com"]));
    assert_eq!(shown["pending"], json!([{"email": second}]));

    // A pending address signs nobody in.
    let body = app.sign_in(second, PASSWORD).await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");

    // A wrong code: refused, the address stays pending.
    let body = call(
        &app,
        VERIFY,
        json!({"e": second, "c": wrong(&code)}),
        bearer,
    )
    .await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    assert_eq!(
        emails(&app, bearer).await["pending"],
        json!([{"email": second}])
    );

    let body = call(&app, VERIFY, json!({"e": second, "c": code}), bearer).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["verifyEmail"]["emails"],
        json!({"primary": "ada@example.com", "active": ["ada@example.com", second], "pending": [], "previous": []})
    );
    // The code is spent.
    let body = call(&app, VERIFY, json!({"e": second, "c": code}), bearer).await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");

    // Signing in works with the secondary address, and so do mailed codes and resets.
    let signed_in = app.sign_in(second, PASSWORD).await;
    assert!(signed_in["errors"].is_null(), "{signed_in}");
    assert_eq!(signed_in["data"]["signIn"]["user"]["id"], ada.user_id);
    let body = app
        .gql(
            "mutation($e: String!) { requestOtp(input: {email: $e}) { challengeId } }",
            json!({"e": second}),
            None,
        )
        .await;
    let challenge = body["data"]["requestOtp"]["challengeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mail = smtp.wait_for(second, WAIT).await;
    let body = app
        .gql(
            "mutation($e: String!, $c: ID!, $k: String!) { verifyOtp(input: {email: $e, challengeId: $c, code: $k}) { user { id } } }",
            json!({"e": second, "c": challenge, "k": mail.code()}),
            None,
        )
        .await;
    assert_eq!(
        body["data"]["verifyOtp"]["user"]["id"], ada.user_id,
        "{body}"
    );
    let body = app
        .gql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({"e": second}),
            None,
        )
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let mail = smtp.wait_for(second, WAIT).await;
    let token = mail
        .text
        .split_whitespace()
        .find(|word| {
            word.len() >= 40
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .unwrap_or_else(|| panic!("no token in {}", mail.text))
        .to_owned();
    let body = app
        .gql(
            "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { user { id } } }",
            json!({"t": token, "p": "a different long passphrase"}),
            None,
        )
        .await;
    assert_eq!(
        body["data"]["resetPassword"]["user"]["id"], ada.user_id,
        "{body}"
    );

    let added = audit_details(&app, "user.email_added").await;
    assert_eq!(added, vec![json!({"email": second})]);
    let confirmed = audit_details(&app, "user.email_confirmed").await;
    assert_eq!(confirmed, vec![json!({"email": second})]);
}

#[tokio::test]
async fn codes_expire_run_out_of_attempts_and_are_superseded() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    app.update_settings("default", |s| {
        s.pending_email_ttl_seconds = 1;
        s.max_login_attempts = 3;
    })
    .await;
    let ada = app.sign_up("codes@example.com").await;
    let bearer = &ada.access_token;
    let second = "codes2@example.com";

    // Expired.
    let code = add(&app, &smtp, bearer, second).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let body = call(&app, VERIFY, json!({"e": second, "c": code}), bearer).await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    assert_eq!(
        emails(&app, bearer).await["pending"],
        json!([{"email": second}])
    );

    // Out of attempts: three wrong codes kill it, the right one no longer works.
    app.update_settings("default", |s| s.pending_email_ttl_seconds = 86_400)
        .await;
    let code = add(&app, &smtp, bearer, second).await;
    for _ in 0..3 {
        let body = call(
            &app,
            VERIFY,
            json!({"e": second, "c": wrong(&code)}),
            bearer,
        )
        .await;
        assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    }
    let body = call(&app, VERIFY, json!({"e": second, "c": code}), bearer).await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");

    // Superseded: adding again makes the earlier code stop working.
    let old = add(&app, &smtp, bearer, second).await;
    let new = add(&app, &smtp, bearer, second).await;
    if old != new {
        let body = call(&app, VERIFY, json!({"e": second, "c": old}), bearer).await;
        assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    }
    let body = call(&app, VERIFY, json!({"e": second, "c": new}), bearer).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        emails(&app, bearer).await["pending"],
        json!([]),
        "one pending row, now active"
    );

    // Someone else's code for the same address is no use to this account.
    let other = app.sign_up("other@example.com").await;
    let third = "shared-pending@example.com";
    let code = add(&app, &smtp, bearer, third).await;
    let body = call(
        &app,
        VERIFY,
        json!({"e": third, "c": code}),
        &other.access_token,
    )
    .await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
}

#[tokio::test]
async fn an_address_is_active_in_one_account_of_the_tenant_at_most() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;

    // Bob's primary address: CONFLICT for Ada, no mail to Bob.
    let body = call(
        &app,
        ADD,
        json!({"e": "BOB@example.com"}),
        &ada.access_token,
    )
    .await;
    assert_eq!(body.code(), "CONFLICT", "{body}");
    // Already one's own.
    let body = call(
        &app,
        ADD,
        json!({"e": "ada@example.com"}),
        &ada.access_token,
    )
    .await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    assert_eq!(body.error().extensions["field"], "email");
    let body = call(&app, ADD, json!({"e": "not an address"}), &ada.access_token).await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");

    // Both add the same free address; the first to confirm wins, the second is a CONFLICT
    // (the unique index speaks, not a 500) and stays pending.
    let shared = "shared@example.com";
    let ada_code = add(&app, &smtp, &ada.access_token, shared).await;
    let bob_code = add(&app, &smtp, &bob.access_token, shared).await;
    let body = call(
        &app,
        VERIFY,
        json!({"e": shared, "c": bob_code}),
        &bob.access_token,
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = call(
        &app,
        VERIFY,
        json!({"e": shared, "c": ada_code}),
        &ada.access_token,
    )
    .await;
    assert_eq!(body.code(), "CONFLICT", "{body}");
    assert_eq!(
        emails(&app, &ada.access_token).await["active"],
        json!(["ada@example.com"])
    );
    let body = app.sign_in(shared, PASSWORD).await;
    assert_eq!(body["data"]["signIn"]["user"]["id"], bob.user_id, "{body}");
    assert!(
        smtp.received().is_empty(),
        "no mail to anyone else: {:?}",
        smtp.received()
    );
}

#[tokio::test]
async fn removing_and_changing_the_primary_address_mail_notices() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let ada = app.sign_up("ada@example.com").await;
    let bearer = &ada.access_token;
    let second = "ada2@example.com";
    let pending = "ada3@example.com";
    let code = add(&app, &smtp, bearer, second).await;
    assert!(call(&app, VERIFY, json!({"e": second, "c": code}), bearer).await["errors"].is_null());
    let _ = add(&app, &smtp, bearer, pending).await;

    // The primary cannot go; a pending address cannot be primary; unknown ones are unknown.
    let body = call(&app, REMOVE, json!({"e": "ada@example.com"}), bearer).await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    assert_eq!(body.error().extensions["field"], "email");
    let body = call(&app, PRIMARY, json!({"e": pending}), bearer).await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    let body = call(&app, PRIMARY, json!({"e": "nobody@example.com"}), bearer).await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    let body = call(&app, REMOVE, json!({"e": "nobody@example.com"}), bearer).await;
    assert_eq!(body.code(), "NOT_FOUND", "{body}");
    assert_eq!(emails(&app, bearer).await["primary"], "ada@example.com");

    // The new primary; the old one is told.
    let body = call(&app, PRIMARY, json!({"e": second}), bearer).await;
    assert_eq!(
        body["data"]["setPrimaryEmail"]["emails"]["primary"], second,
        "{body}"
    );
    let notice = smtp.wait_for("ada@example.com", WAIT).await;
    assert!(
        notice.subject.contains("primary email"),
        "{}",
        notice.subject
    );
    assert!(notice.text.contains(second), "{}", notice.text);
    let changed = audit_details(&app, "user.primary_email_changed").await;
    assert_eq!(
        changed,
        vec![json!({"old": "ada@example.com", "new": second})]
    );

    // The old primary can go now: it is previous, told, and signs nobody in.
    let body = call(&app, REMOVE, json!({"e": "ada@example.com"}), bearer).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["removeEmail"]["emails"],
        json!({"primary": second, "active": [second], "pending": [{"email": pending}], "previous": [{"email": "ada@example.com"}]})
    );
    let notice = smtp.wait_for("ada@example.com", WAIT).await;
    assert!(notice.subject.contains("removed"), "{}", notice.subject);
    let body = app.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    assert!(app.sign_in(second, PASSWORD).await["errors"].is_null());

    // A pending address is dropped with its code; no notice.
    let body = call(&app, REMOVE, json!({"e": pending}), bearer).await;
    assert_eq!(
        body["data"]["removeEmail"]["emails"]["pending"],
        json!([]),
        "{body}"
    );
    let removed = audit_details(&app, "user.email_removed").await;
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert_eq!(
        removed[0],
        json!({"email": "ada@example.com", "was": "active"})
    );

    // The removed address is free for another account.
    let bob = app.sign_up("bob@example.com").await;
    let code = add(&app, &smtp, &bob.access_token, "ada@example.com").await;
    let body = call(
        &app,
        VERIFY,
        json!({"e": "ada@example.com", "c": code}),
        &bob.access_token,
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(smtp.received().is_empty(), "{:?}", smtp.received());

    // Deleting the account removes every address row: active, pending and previous.
    let _ = add(&app, &smtp, bearer, pending).await;
    let body = app
        .gql("mutation { deleteAccount }", json!({}), Some(bearer))
        .await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");
    let store = app.store().await;
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM user_emails WHERE user_id = $1")
        .bind(&ada.user_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn user_shows_a_public_profile_by_id_or_active_address_and_nothing_private() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let body = app
        .gql(
            crate::profile::UPDATE,
            json!({"i": {"name": {"first": "Bob", "last": "B"}, "metadata": {"secret": "s3"}}}),
            Some(&bob.access_token),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let _ = add(&app, &smtp, &bob.access_token, "bob.pending@example.com").await;

    let expected = json!({"id": bob.user_id, "name": {"first": "Bob", "last": "B", "display": "Test"}, "avatar": null});
    for key in [bob.user_id.as_str(), "bob@example.com", " BOB@Example.com "] {
        let body = call(&app, USER, json!({"k": key}), &ada.access_token).await;
        assert_eq!(body["data"]["user"], expected, "{key}: {body}");
    }
    for key in [
        "bob.pending@example.com",
        "nobody@example.com",
        "no-such-id",
        "",
    ] {
        let body = call(&app, USER, json!({"k": key}), &ada.access_token).await;
        assert!(body["errors"].is_null(), "{body}");
        assert_eq!(body["data"]["user"], Value::Null, "{key}");
    }

    // The type has no private field to ask for.
    let body = app
        .gql(
            "{ __type(name: \"PublicUser\") { fields { name } } }",
            json!({}),
            None,
        )
        .await;
    let mut fields: Vec<String> = body["data"]["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    assert_eq!(fields, ["avatar", "id", "name"]);
    let body = call(
        &app,
        "query($k: String!) { user(idOrEmail: $k) { id emails { primary } } }",
        json!({"k": bob.user_id}),
        &ada.access_token,
    )
    .await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");

    // Signed in only, and only within the tenant.
    let body = app.gql(USER, json!({"k": bob.user_id}), None).await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "other").await;
    let carol = app.sign_up_in("carol@example.com", Some("other")).await;
    let (_, body) = app
        .gql_raw(
            USER,
            json!({"k": bob.user_id}),
            Some(&carol.access_token),
            Some("other"),
        )
        .await;
    assert_eq!(body["data"]["user"], Value::Null, "{body}");
}
