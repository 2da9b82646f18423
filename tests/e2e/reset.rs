//! Password reset by mail, over real SMTP: single use, the same answer for unknown
//! addresses, and every session of the account revoked (and pushed to verifiers).

use std::time::Duration;

use serde_json::json;

use crate::support::{AuthPayload, Gql, PASSWORD, SmtpServer, TestApp, code, spawn_app_with};

pub(crate) const REQUEST_RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
pub(crate) const RESET: &str = "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { accessToken refreshToken user { id roles } session { id } } }";
const NEW_PASSWORD: &str = "a brand new passphrase for reset";

async fn app_with_mail(smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    let app = spawn_app_with(move |config| config.smtp_url = Some(url)).await;
    app.update_settings("default", |s| {
        s.password_reset_url = Some("https://app.example.com/reset".into());
    })
    .await;
    app
}

/// The token in the reset link of the latest mail to `email`.
pub(crate) async fn token_from_mail(smtp: &SmtpServer, email: &str) -> String {
    let mail = smtp.wait_for(email, Duration::from_secs(10)).await;
    let start = mail
        .text
        .find("https://app.example.com/reset?token=")
        .unwrap_or_else(|| panic!("no reset link in: {}", mail.text))
        + "https://app.example.com/reset?token=".len();
    mail.text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn reset(app: &TestApp, token: &str, password: &str) -> Gql {
    app.gql(RESET, json!({"t": token, "p": password}), None)
        .await
}

#[tokio::test]
async fn a_reset_sets_the_password_and_revokes_every_session() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let email = "forgetful@example.com";
    let first = app.sign_up(email).await;
    let second = app.signed_in(email, PASSWORD).await;

    let body = app.gql(REQUEST_RESET, json!({"e": email}), None).await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let token = token_from_mail(&smtp, email).await;

    // A weak password is refused and leaves the token usable.
    let body = reset(&app, &token, "password").await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");

    let body = reset(&app, &token, NEW_PASSWORD).await;
    assert!(body["errors"].is_null(), "{body}");
    let fresh: AuthPayload = body.data("resetPassword");
    assert_eq!(fresh.user_id, first.user_id);

    // Every earlier session is gone: access and refresh tokens refused.
    for old in [&first, &second] {
        let me = app
            .gql("{ me { id } }", json!({}), Some(&old.access_token))
            .await;
        assert_eq!(code(&me), "UNAUTHENTICATED", "{me}");
        let refreshed = app
            .gql(
                "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
                json!({"t": old.refresh_token}),
                None,
            )
            .await;
        assert_eq!(code(&refreshed), "UNAUTHENTICATED", "{refreshed}");
    }
    // The new session works; the old password does not, the new one does.
    let me = app
        .gql("{ me { id } }", json!({}), Some(&fresh.access_token))
        .await;
    assert_eq!(me["data"]["me"]["id"], first.user_id, "{me}");
    assert_eq!(
        code(&app.sign_in(email, PASSWORD).await),
        "INVALID_CREDENTIALS"
    );
    assert!(app.sign_in(email, NEW_PASSWORD).await["errors"].is_null());

    // Single use.
    let body = reset(&app, &token, "yet another passphrase here").await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");

    // Verifiers are told: a user cut-off entry is on the revocation feed.
    let verify_token = app.machine_token("default", &["verify"]).await;
    let feed = app
        .get_json("/internal/revocations", Some(&verify_token))
        .await;
    let user_id = first.user_id.as_str();
    assert!(
        feed["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "user" && e["id"] == user_id),
        "{feed}"
    );
}

#[tokio::test]
async fn unknown_addresses_get_the_same_answer_and_no_mail() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    app.sign_up("real@example.com").await;
    let unknown = app
        .gql(REQUEST_RESET, json!({"e": "ghost@example.com"}), None)
        .await;
    let known = app
        .gql(REQUEST_RESET, json!({"e": "real@example.com"}), None)
        .await;
    assert_eq!(unknown, known);
    assert_eq!(known["data"]["requestPasswordReset"], true);
    // The known address gets its mail; by then the unknown one would have had its own.
    token_from_mail(&smtp, "real@example.com").await;
    let store = app.store().await;
    let (queued,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM mail_outbox WHERE recipient = 'ghost@example.com'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(queued, 0);
    // A made-up token does nothing.
    let body = reset(&app, "made-up-token", NEW_PASSWORD).await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
}

#[tokio::test]
async fn a_newer_reset_mail_supersedes_the_older() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let email = "twice@example.com";
    app.sign_up(email).await;
    app.gql(REQUEST_RESET, json!({"e": email}), None).await;
    let old = token_from_mail(&smtp, email).await;
    app.gql(REQUEST_RESET, json!({"e": email}), None).await;
    let new = loop {
        let token = token_from_mail(&smtp, email).await;
        if token != old {
            break token;
        }
    };
    assert_eq!(
        code(&reset(&app, &old, NEW_PASSWORD).await),
        "INVALID_CREDENTIALS"
    );
    assert!(reset(&app, &new, NEW_PASSWORD).await["errors"].is_null());
}
