//! Passwordless sign-in with mailed codes, over real SMTP: the test runs an SMTP server,
//! the app mails the code to it, the test reads the code from the mail.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Gql, SmtpServer, TestApp, code, spawn_app_with};

const REQUEST_OTP: &str =
    "mutation($e: String!) { requestOtp(input: {email: $e}) { challengeId expiresAt codeLength } }";
const VERIFY_OTP: &str = "mutation($e: String!, $c: ID!, $code: String!) { verifyOtp(input: {email: $e, challengeId: $c, code: $code}) { accessToken refreshToken user { id roles emails { primary } } session { id method } } }";

/// An app that mails through `smtp`.
pub(crate) async fn app_with_mail(smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    spawn_app_with(move |config| config.smtp_url = Some(url)).await
}

/// The first run of exactly `digits` digits in `text`.
fn code_in(text: &str, digits: usize) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == digits)
        .unwrap_or_else(|| panic!("no {digits}-digit code in mail: {text}"))
        .to_owned()
}

/// Ask for a code for `email`; returns the challenge id and the code from the mail.
pub(crate) async fn request(
    app: &TestApp,
    smtp: &SmtpServer,
    email: &str,
) -> (String, String, Value) {
    let body = app.gql(REQUEST_OTP, json!({"e": email}), None).await;
    assert!(body["errors"].is_null(), "{body}");
    let challenge = body["data"]["requestOtp"].clone();
    let digits = challenge["codeLength"].as_u64().unwrap() as usize;
    let mail = smtp.wait_for(email, Duration::from_secs(10)).await;
    (
        challenge["challengeId"].as_str().unwrap().to_owned(),
        code_in(&mail.text, digits),
        challenge,
    )
}

/// Signs in with `code` for `challenge`: the whole answer.
pub(crate) async fn verify(app: &TestApp, email: &str, challenge: &str, code: &str) -> Gql {
    app.gql(
        VERIFY_OTP,
        json!({"e": email, "c": challenge, "code": code}),
        None,
    )
    .await
}

#[tokio::test]
async fn a_code_creates_the_account_on_first_use_and_signs_it_in_after() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let (challenge, code, answer) = request(&app, &smtp, "New.Person@Example.com").await;
    assert_eq!(answer["codeLength"], 6);
    let body = verify(&app, "new.person@example.com", &challenge, &code).await;
    assert!(body["errors"].is_null(), "{body}");
    let first = &body["data"]["verifyOtp"];
    assert_eq!(first["user"]["emails"]["primary"], "new.person@example.com");
    assert_eq!(first["session"]["method"], "otp");
    let me = app
        .gql("{ me { id } }", json!({}), first["accessToken"].as_str())
        .await;
    assert_eq!(me["data"]["me"]["id"], first["user"]["id"], "{me}");

    // Second time: the same account, signed in again.
    let (challenge, code, _) = request(&app, &smtp, "new.person@example.com").await;
    let body = verify(&app, "new.person@example.com", &challenge, &code).await;
    assert_eq!(
        body["data"]["verifyOtp"]["user"]["id"], first["user"]["id"],
        "{body}"
    );
    assert_ne!(
        body["data"]["verifyOtp"]["session"]["id"],
        first["session"]["id"]
    );
}

#[tokio::test]
async fn the_answer_does_not_tell_whether_an_account_exists() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    app.sign_up("known@example.com").await;
    let known = app
        .gql(REQUEST_OTP, json!({"e": "known@example.com"}), None)
        .await;
    let unknown = app
        .gql(REQUEST_OTP, json!({"e": "unknown@example.com"}), None)
        .await;
    let shape = |body: &Value| {
        let answer = body["data"]["requestOtp"].as_object().unwrap().clone();
        (
            answer.keys().cloned().collect::<Vec<_>>(),
            answer["codeLength"].clone(),
        )
    };
    assert_eq!(shape(&known), shape(&unknown));
    // Both got a mail: a sign-in code and a sign-up code.
    smtp.wait_for("known@example.com", Duration::from_secs(10))
        .await;
    smtp.wait_for("unknown@example.com", Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn wrong_codes_kill_the_challenge_after_the_attempt_limit() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let email = "guess@example.com";
    let (challenge, code, _) = request(&app, &smtp, email).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for attempt in 1..=3 {
        let body = verify(&app, email, &challenge, wrong).await;
        assert_eq!(
            code_of(&body),
            "INVALID_CREDENTIALS",
            "attempt {attempt}: {body}"
        );
    }
    // Dead now, even for the right code.
    let body = verify(&app, email, &challenge, &code).await;
    assert_eq!(code_of(&body), "INVALID_CREDENTIALS", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("request a new one"),
        "{body}"
    );

    // The limit is the tenant's: with one attempt, the first wrong code kills it.
    app.update_settings("default", |s| s.max_login_attempts = 1)
        .await;
    let (challenge, code, _) = request(&app, &smtp, email).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    verify(&app, email, &challenge, wrong).await;
    let body = verify(&app, email, &challenge, &code).await;
    assert_eq!(code_of(&body), "INVALID_CREDENTIALS", "{body}");
}

fn code_of(body: &Value) -> &str {
    code(body)
}

#[tokio::test]
async fn a_code_works_once_only_for_its_email_and_a_new_request_supersedes_it() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let email = "once@example.com";
    let (challenge, code, _) = request(&app, &smtp, email).await;
    // Another address cannot use it (and that costs an attempt).
    let body = verify(&app, "other@example.com", &challenge, &code).await;
    assert_eq!(code_of(&body), "INVALID_CREDENTIALS", "{body}");
    let body = verify(&app, email, &challenge, &code).await;
    assert!(body["errors"].is_null(), "{body}");
    // Reuse.
    let body = verify(&app, email, &challenge, &code).await;
    assert_eq!(code_of(&body), "INVALID_CREDENTIALS", "{body}");

    // Superseded: the older of two open codes stops working.
    let (old_challenge, old_code, _) = request(&app, &smtp, email).await;
    let (new_challenge, new_code, _) = request(&app, &smtp, email).await;
    let body = verify(&app, email, &old_challenge, &old_code).await;
    assert_eq!(code_of(&body), "INVALID_CREDENTIALS", "{body}");
    let body = verify(&app, email, &new_challenge, &new_code).await;
    assert!(body["errors"].is_null(), "{body}");

    // Garbage ids and codes are answered, not crashed on.
    for (id, code) in [
        ("not-an-id", "123456"),
        ("", ""),
        (&new_challenge[..], "12345678901234567890"),
    ] {
        let body = verify(&app, email, id, code).await;
        assert_eq!(code_of(&body), "INVALID_CREDENTIALS", "{body}");
    }
}

#[tokio::test]
async fn codes_expire_and_follow_the_tenant_length() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    app.update_settings("default", |s| {
        s.otp_ttl_seconds = 1;
        s.otp_length = 8;
    })
    .await;
    let email = "slow@example.com";
    let (challenge, code, answer) = request(&app, &smtp, email).await;
    assert_eq!(answer["codeLength"], 8);
    assert_eq!(code.len(), 8);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let body = verify(&app, email, &challenge, &code).await;
    assert_eq!(code_of(&body), "INVALID_CREDENTIALS", "{body}");
    // Nothing was created for the address.
    let store = app.store().await;
    let tenant = store.tenant_by_slug("default").await.unwrap();
    let parsed = auth_api::domain::Email::parse(email).unwrap();
    assert!(
        store
            .user_by_email(&tenant.id, &parsed)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn codes_are_stored_only_as_keyed_hashes() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let (_, code, _) = request(&app, &smtp, "hash@example.com").await;
    let store = app.store().await;
    let rows: Vec<(String,)> = sqlx::query_as("SELECT secret_hash FROM challenges")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].0.contains(&code));
    assert_ne!(rows[0].0, auth_api::crypto::token_hash(&code));
}
