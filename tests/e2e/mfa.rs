//! Second factors end to end, with codes computed here from the secret the API handed out:
//! enrolment, the second step of every sign-in method (password, email code, provider,
//! password reset), recovery codes, the tenant policy, an admin's reset, and the attacks
//! (replays, guessing, another user's or tenant's mfaToken, the mfaToken as a bearer, one
//! code used twice at once).

use std::time::Duration;

use serde_json::{Value, json};
use totp_rs::{Algorithm, Builder, Secret};

use crate::support::{AuthPayload, Gql, PASSWORD, SmtpServer, TestApp, spawn_app, spawn_app_with};

const START: &str =
    "mutation($t: String) { startTotpEnrollment(mfaToken: $t) { secret otpauthUri qrCodeSvg } }";
const CONFIRM: &str = "mutation($c: String!, $t: String) { confirmTotpEnrollment(code: $c, mfaToken: $t) { \
    recoveryCodes signIn { accessToken refreshToken user { id roles } session { id method } } } }";
const VERIFY: &str = "mutation($t: String!, $totp: String, $rec: String, $pk: JSON) { \
    verifyMfa(input: {mfaToken: $t, totpCode: $totp, recoveryCode: $rec, passkey: $pk}) { \
    accessToken refreshToken user { id roles } session { id method } } }";
const STATUS: &str = "{ me { mfa { enabled totp recoveryCodesLeft passkeys } } }";
const DISABLE: &str =
    "mutation($c: String, $p: String) { disableTotp(input: {totpCode: $c, password: $p}) }";
const REGENERATE: &str = "mutation($c: String!) { regenerateRecoveryCodes(input: {totpCode: $c}) { recoveryCodes signIn { accessToken } } }";
const RESET_MFA: &str = "mutation($u: ID!) { adminResetMfa(userId: $u) }";

/// The step codes are computed for: one with at least 15 s left, so that the codes of the
/// steps before and after it stay valid (±1 step) for the whole test.
struct Clock {
    step: u64,
}

impl Clock {
    async fn start() -> Self {
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let into_step = now() % 30;
        if into_step >= 15 {
            tokio::time::sleep(Duration::from_secs(30 - into_step)).await;
        }
        Self { step: now() / 30 }
    }

    /// The code of `secret` (base32) for the step `offset` steps from this one.
    fn code(&self, secret: &str, offset: i64) -> String {
        let bytes = Secret::try_from_base32(secret).expect("base32 secret");
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(30)
            .with_secret(bytes)
            .build()
            .expect("totp");
        totp.generate((self.step as i64 + offset) as u64 * 30 + 1)
            .to_string()
    }
}

/// An app that mails through `smtp`.
async fn app_with_mail(smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    spawn_app_with(move |config| config.smtp_url = Some(url)).await
}

/// Enrols an authenticator app for the session `token` with the code of step -1; the
/// secret and the recovery codes.
async fn enrol(app: &TestApp, token: &str, clock: &Clock) -> (String, Vec<String>) {
    let started: Value = app
        .gql(START, json!({}), Some(token))
        .await
        .data("startTotpEnrollment");
    let secret = started["secret"].as_str().unwrap().to_owned();
    let confirmed: Value = app
        .gql(CONFIRM, json!({"c": clock.code(&secret, -1)}), Some(token))
        .await
        .data("confirmTotpEnrollment");
    let codes: Vec<String> = serde_json::from_value(confirmed["recoveryCodes"].clone()).unwrap();
    (secret, codes)
}

/// The mfaToken and methods of an `MFA_REQUIRED` answer; panics on any other answer.
fn mfa_required(body: &Gql, field: &str) -> (String, Vec<String>) {
    assert_eq!(body.code(), "MFA_REQUIRED", "{body}");
    assert!(
        body["data"].is_null() || body["data"][field].is_null(),
        "{body}"
    );
    let ext = &body["errors"][0]["extensions"];
    let methods: Vec<String> = serde_json::from_value(ext["methods"].clone()).unwrap();
    assert!(ext["expiresIn"].as_i64().unwrap() > 0, "{body}");
    (ext["mfaToken"].as_str().unwrap().to_owned(), methods)
}

async fn password_step(app: &TestApp, email: &str) -> String {
    let (token, methods) = mfa_required(&app.sign_in(email, PASSWORD).await, "signIn");
    assert_eq!(methods, ["totp", "recovery"]);
    token
}

async fn verify(app: &TestApp, token: &str, factor: Value) -> Gql {
    let mut vars = factor;
    vars["t"] = json!(token);
    app.gql(VERIFY, vars, None).await
}

async fn status(app: &TestApp, token: &str) -> Value {
    let body = app.gql(STATUS, json!({}), Some(token)).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["me"]["mfa"].clone()
}

async fn audit_actions(app: &TestApp, user_id: &str) -> Vec<String> {
    let store = app.store().await;
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT action FROM audit_events WHERE user_id = $1 ORDER BY at, id")
            .bind(user_id)
            .fetch_all(store.pool())
            .await
            .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

async fn sessions_of(app: &TestApp, user_id: &str) -> i64 {
    let store = app.store().await;
    let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    row.0
}

#[tokio::test]
async fn enrol_confirm_and_sign_in_with_the_second_step() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let clock = Clock::start().await;
    let email = "two@example.com";
    let first = app.sign_up(email).await;
    let token = first.access_token.as_str();
    assert_eq!(
        status(&app, token).await,
        json!({"enabled": false, "totp": false, "recoveryCodesLeft": 0, "passkeys": 0})
    );

    let started: Value = app
        .gql(START, json!({}), Some(token))
        .await
        .data("startTotpEnrollment");
    let secret = started["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    let uri = started["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(
        uri.contains("two%40example.com") || uri.contains("two@example.com"),
        "{uri}"
    );
    assert!(started["qrCodeSvg"].as_str().unwrap().contains("<svg"));

    // Nothing is on before the confirmation: a sign-in goes straight through.
    let plain = app.signed_in(email, PASSWORD).await;
    assert_eq!(status(&app, &plain.access_token).await["totp"], false);

    // A wrong first code switches nothing on.
    let wrong = app
        .gql(CONFIRM, json!({"c": clock.code(&secret, 5)}), Some(token))
        .await;
    assert_eq!(wrong.code(), "INVALID_CREDENTIALS", "{wrong}");
    let confirmed: Value = app
        .gql(CONFIRM, json!({"c": clock.code(&secret, -1)}), Some(token))
        .await
        .data("confirmTotpEnrollment");
    assert!(confirmed["signIn"].is_null());
    let codes: Vec<String> = serde_json::from_value(confirmed["recoveryCodes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    for c in &codes {
        assert!(
            c.len() >= 10 && c.chars().all(|c| c.is_ascii_alphanumeric()),
            "{c}"
        );
    }
    // The caller's session goes on, and shows the factor (never the secret).
    assert_eq!(
        status(&app, token).await,
        json!({"enabled": true, "totp": true, "recoveryCodesLeft": 10, "passkeys": 0})
    );
    let me = app
        .gql("{ me { mfa { totp } } }", json!({}), Some(token))
        .await;
    assert!(!me.to_string().contains(&secret));
    // A second enrolment while one is on: CONFLICT.
    let again = app.gql(START, json!({}), Some(token)).await;
    assert_eq!(again.code(), "CONFLICT", "{again}");

    // The notice.
    let notice = smtp.wait_for(email, Duration::from_secs(10)).await;
    assert!(
        notice.subject.contains("second factor was added"),
        "{}",
        notice.subject
    );
    assert!(
        notice.text.contains("An authenticator app"),
        "{}",
        notice.text
    );
    assert!(!notice.text.contains(&secret));

    // The second step: no token before it; the mfaToken is no bearer.
    let sessions_before = sessions_of(&app, &first.user_id).await;
    let mfa_token = password_step(&app, email).await;
    assert_eq!(sessions_of(&app, &first.user_id).await, sessions_before);
    let me = app.gql("{ me { id } }", json!({}), Some(&mfa_token)).await;
    assert_eq!(me.code(), "UNAUTHENTICATED", "{me}");

    // The code that confirmed the enrolment is spent.
    let replay = verify(&app, &mfa_token, json!({"totp": clock.code(&secret, -1)})).await;
    assert_eq!(replay.code(), "INVALID_CREDENTIALS", "{replay}");
    // One wrong code does not end the mfaToken.
    let wrong = verify(&app, &mfa_token, json!({"totp": "000000"})).await;
    assert_eq!(wrong.code(), "INVALID_CREDENTIALS", "{wrong}");
    let done = verify(&app, &mfa_token, json!({"totp": clock.code(&secret, 0)})).await;
    let issued: AuthPayload = done.data("verifyMfa");
    assert_eq!(done["data"]["verifyMfa"]["session"]["method"], "password");
    assert_eq!(issued.user_id, first.user_id);
    let me = app
        .gql("{ me { id } }", json!({}), Some(&issued.access_token))
        .await;
    assert_eq!(me["data"]["me"]["id"], json!(first.user_id), "{me}");
    assert_eq!(sessions_of(&app, &first.user_id).await, sessions_before + 1);

    // The mfaToken is spent; the code too, even on a new mfaToken.
    let reused = verify(&app, &mfa_token, json!({"totp": clock.code(&secret, 1)})).await;
    assert_eq!(reused.code(), "UNAUTHENTICATED", "{reused}");
    let next = password_step(&app, email).await;
    let replay = verify(&app, &next, json!({"totp": clock.code(&secret, 0)})).await;
    assert_eq!(replay.code(), "INVALID_CREDENTIALS", "{replay}");
    let done = verify(&app, &next, json!({"totp": clock.code(&secret, 1)})).await;
    let _: AuthPayload = done.data("verifyMfa");

    // At rest: the secret sealed, the recovery codes hashed.
    let store = app.store().await;
    let (sealed,): (String,) = sqlx::query_as("SELECT secret FROM mfa_totp WHERE user_id = $1")
        .bind(&first.user_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(!sealed.contains(&secret) && !sealed.to_lowercase().contains(&secret.to_lowercase()));
    let hashes: Vec<(String,)> =
        sqlx::query_as("SELECT code_hash FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(&first.user_id)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(hashes.len(), 10);
    assert!(hashes.iter().all(|(h,)| !codes.contains(h)));

    let actions = audit_actions(&app, &first.user_id).await;
    for action in [
        "mfa.totp_enrollment_started",
        "mfa.totp_enabled",
        "mfa.challenged",
        "mfa.failed",
        "mfa.verified",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not in {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_never_yields_an_mfa_token_and_exactly_one_factor_is_taken() {
    let app = spawn_app().await;
    let clock = Clock::start().await;
    let email = "one@example.com";
    let user = app.sign_up(email).await;
    let (secret, codes) = enrol(&app, &user.access_token, &clock).await;
    let wrong = app.sign_in(email, "not the password at all").await;
    assert_eq!(wrong.code(), "INVALID_CREDENTIALS", "{wrong}");
    assert!(wrong["errors"][0]["extensions"]["mfaToken"].is_null());

    let token = password_step(&app, email).await;
    for factors in [
        json!({}),
        json!({"totp": clock.code(&secret, 0), "rec": codes[0]}),
        json!({"totp": clock.code(&secret, 0), "pk": {"id": "x"}}),
    ] {
        let body = verify(&app, &token, factors).await;
        assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    }
    // Without passkeys, a passkey is refused as such.
    let body = verify(&app, &token, json!({"pk": {"id": "x"}})).await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    assert!(body.error().message.contains("no passkey"), "{body}");
    // Codes two steps away are refused: one step of skew, no more.
    for offset in [-2, 2, 3] {
        let body = verify(&app, &token, json!({"totp": clock.code(&secret, offset)})).await;
        assert_eq!(body.code(), "INVALID_CREDENTIALS", "{offset}: {body}");
    }
    let done = verify(&app, &token, json!({"totp": clock.code(&secret, 1)})).await;
    let _: AuthPayload = done.data("verifyMfa");
}

#[tokio::test]
async fn recovery_codes_work_once_each_and_regenerating_replaces_them() {
    let app = spawn_app().await;
    let clock = Clock::start().await;
    let email = "rescue@example.com";
    let user = app.sign_up(email).await;
    let (secret, codes) = enrol(&app, &user.access_token, &clock).await;

    // Typed in upper case with a dash: the same code.
    let typed = format!("{}-{}", &codes[0][..6], &codes[0][6..]).to_uppercase();
    let token = password_step(&app, email).await;
    let done = verify(&app, &token, json!({"rec": typed})).await;
    let session: AuthPayload = done.data("verifyMfa");
    assert_eq!(
        status(&app, &session.access_token).await["recoveryCodesLeft"],
        9
    );
    let token = password_step(&app, email).await;
    let again = verify(&app, &token, json!({"rec": codes[0]})).await;
    assert_eq!(again.code(), "INVALID_CREDENTIALS", "{again}");
    let done = verify(&app, &token, json!({"rec": codes[1]})).await;
    let _: AuthPayload = done.data("verifyMfa");

    // Regenerating needs a current code, and replaces every code.
    let wrong = app
        .gql(
            REGENERATE,
            json!({"c": "123456"}),
            Some(&session.access_token),
        )
        .await;
    assert_eq!(wrong.code(), "INVALID_CREDENTIALS", "{wrong}");
    let fresh: Value = app
        .gql(
            REGENERATE,
            json!({"c": clock.code(&secret, 0)}),
            Some(&session.access_token),
        )
        .await
        .data("regenerateRecoveryCodes");
    let fresh: Vec<String> = serde_json::from_value(fresh["recoveryCodes"].clone()).unwrap();
    assert_eq!(fresh.len(), 10);
    assert_eq!(
        status(&app, &session.access_token).await["recoveryCodesLeft"],
        10
    );
    let token = password_step(&app, email).await;
    let old = verify(&app, &token, json!({"rec": codes[2]})).await;
    assert_eq!(old.code(), "INVALID_CREDENTIALS", "{old}");
    let done = verify(&app, &token, json!({"rec": fresh[9]})).await;
    let _: AuthPayload = done.data("verifyMfa");
    let actions = audit_actions(&app, &user.user_id).await;
    assert!(
        actions.iter().any(|a| a == "mfa.recovery_code_used"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a == "mfa.recovery_codes_regenerated"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn an_expired_mfa_token_is_refused() {
    let app = spawn_app_with(|c| c.mfa_token_ttl_seconds = 1).await;
    let clock = Clock::start().await;
    let email = "slow@example.com";
    let user = app.sign_up(email).await;
    let (secret, _) = enrol(&app, &user.access_token, &clock).await;
    let body = app.sign_in(email, PASSWORD).await;
    let (token, _) = mfa_required(&body, "signIn");
    assert_eq!(body["errors"][0]["extensions"]["expiresIn"], 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = verify(&app, &token, json!({"totp": clock.code(&secret, 0)})).await;
    assert_eq!(late.code(), "UNAUTHENTICATED", "{late}");
    // The code was not spent by the refused attempt.
    let token = password_step(&app, email).await;
    let done = verify(&app, &token, json!({"totp": clock.code(&secret, 0)})).await;
    let _: AuthPayload = done.data("verifyMfa");
}

#[tokio::test]
async fn starting_an_enrolment_is_limited_per_user_and_a_refused_start_replaces_nothing() {
    let app = spawn_app().await;
    let clock = Clock::start().await;
    let spammer = app.sign_up("spammer@example.com").await;
    let mut secret = String::new();
    for attempt in 1..=10 {
        let started: Value = app
            .gql(START, json!({}), Some(&spammer.access_token))
            .await
            .data("startTotpEnrollment");
        secret = started["secret"].as_str().unwrap().to_owned();
        assert!(!secret.is_empty(), "attempt {attempt}");
    }
    let refused = app.gql(START, json!({}), Some(&spammer.access_token)).await;
    assert_eq!(refused.code(), "RATE_LIMITED", "{refused}");
    assert!(refused["data"].is_null() || refused["data"]["startTotpEnrollment"].is_null());
    assert!(
        refused["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // The refused start wrote no new secret: the tenth one still confirms.
    let confirmed: Value = app
        .gql(
            CONFIRM,
            json!({"c": clock.code(&secret, 0)}),
            Some(&spammer.access_token),
        )
        .await
        .data("confirmTotpEnrollment");
    assert_eq!(confirmed["recoveryCodes"].as_array().unwrap().len(), 10);
    // The limit is the user's: another user from the same address still starts.
    let other = app.sign_up("bystander@example.com").await;
    let started: Value = app
        .gql(START, json!({}), Some(&other.access_token))
        .await
        .data("startTotpEnrollment");
    assert!(started["secret"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn five_wrong_codes_end_the_mfa_token_and_lock_the_second_step() {
    let app = spawn_app().await;
    let clock = Clock::start().await;
    let email = "guessed@example.com";
    let user = app.sign_up(email).await;
    let (secret, _) = enrol(&app, &user.access_token, &clock).await;
    let token = password_step(&app, email).await;
    let right = clock.code(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for attempt in 1..=4 {
        let body = verify(&app, &token, json!({"totp": wrong})).await;
        assert_eq!(
            body.code(),
            "INVALID_CREDENTIALS",
            "attempt {attempt}: {body}"
        );
    }
    let fifth = verify(&app, &token, json!({"totp": wrong})).await;
    assert_eq!(fifth.code(), "RATE_LIMITED", "{fifth}");
    // Ended: the right code no longer helps.
    let late = verify(&app, &token, json!({"totp": right})).await;
    assert_eq!(late.code(), "RATE_LIMITED", "{late}");
    assert!(
        late["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // And a new mfaToken does not reset the count: the user's second step is locked.
    let token = password_step(&app, email).await;
    let locked = verify(&app, &token, json!({"totp": right})).await;
    assert_eq!(locked.code(), "RATE_LIMITED", "{locked}");
    assert_eq!(
        sessions_of(&app, &user.user_id).await,
        1,
        "only the sign-up's session"
    );
}

#[tokio::test]
async fn another_users_mfa_token_or_another_tenant_gets_nothing() {
    let app = spawn_app().await;
    let clock = Clock::start().await;
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "other").await;
    let alice = app.sign_up("alice@example.com").await;
    let mallory = app.sign_up("mallory@example.com").await;
    let (alice_secret, _) = enrol(&app, &alice.access_token, &clock).await;
    let (mallory_secret, mallory_codes) = enrol(&app, &mallory.access_token, &clock).await;
    let alice_token = password_step(&app, "alice@example.com").await;

    // Mallory's own factors do not open Alice's sign-in.
    let body = verify(
        &app,
        &alice_token,
        json!({"totp": clock.code(&mallory_secret, 0)}),
    )
    .await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    let body = verify(&app, &alice_token, json!({"rec": mallory_codes[0]})).await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    // Presented in another tenant, Alice's mfaToken is unknown there.
    let (_, body) = app
        .gql_raw(
            VERIFY,
            json!({"t": alice_token, "totp": clock.code(&alice_secret, 0)}),
            None,
            Some("other"),
        )
        .await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");
    // A made-up mfaToken, and a refresh token, are unknown too.
    let body = verify(
        &app,
        "made-up",
        json!({"totp": clock.code(&alice_secret, 0)}),
    )
    .await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");
    let body = verify(
        &app,
        &alice.refresh_token,
        json!({"totp": clock.code(&alice_secret, 0)}),
    )
    .await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");

    // Alice's sign-in is still hers: her code opens her session.
    let done = verify(
        &app,
        &alice_token,
        json!({"totp": clock.code(&alice_secret, 0)}),
    )
    .await;
    let issued: AuthPayload = done.data("verifyMfa");
    assert_eq!(issued.user_id, alice.user_id);
    // Mallory's recovery code was not spent by the attempt on Alice's sign-in.
    assert_eq!(
        status(&app, &mallory.access_token).await["recoveryCodesLeft"],
        10
    );
}

#[tokio::test]
async fn one_code_used_twice_at_once_opens_one_session() {
    let app = spawn_app().await;
    let clock = Clock::start().await;
    let email = "race@example.com";
    let user = app.sign_up(email).await;
    let (secret, codes) = enrol(&app, &user.access_token, &clock).await;
    let code = clock.code(&secret, 0);
    // Three sign-ins present the same code at once: one wins.
    let tokens = [
        password_step(&app, email).await,
        password_step(&app, email).await,
        password_step(&app, email).await,
    ];
    let answers = futures_util::future::join_all(
        tokens
            .iter()
            .map(|token| verify(&app, token, json!({"totp": code}))),
    )
    .await;
    let wins = answers
        .iter()
        .filter(|body| body["errors"].is_null())
        .count();
    assert_eq!(wins, 1, "{answers:?}");
    for body in answers.iter().filter(|body| !body["errors"].is_null()) {
        assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    }
    // Afterwards the code is spent.
    let token = password_step(&app, email).await;
    let replay = verify(&app, &token, json!({"totp": code})).await;
    assert_eq!(replay.code(), "INVALID_CREDENTIALS", "{replay}");
    // The same recovery code at once on two sign-ins.
    let (a, b) = (
        password_step(&app, email).await,
        password_step(&app, email).await,
    );
    let (first, second) = tokio::join!(
        verify(&app, &a, json!({"rec": codes[3]})),
        verify(&app, &b, json!({"rec": codes[3]})),
    );
    let wins = [&first, &second]
        .iter()
        .filter(|body| body["errors"].is_null())
        .count();
    assert_eq!(wins, 1, "{first} {second}");
    // One mfaToken used twice at once with two right factors: one session.
    let token = password_step(&app, email).await;
    let (first, second) = tokio::join!(
        verify(&app, &token, json!({"rec": codes[4]})),
        verify(&app, &token, json!({"rec": codes[5]})),
    );
    let wins = [&first, &second]
        .iter()
        .filter(|body| body["errors"].is_null())
        .count();
    assert_eq!(wins, 1, "{first} {second}");
    // The sign-up's, and one for each race.
    assert_eq!(sessions_of(&app, &user.user_id).await, 4);
}

#[tokio::test]
async fn disabling_needs_a_code_or_the_password_and_turns_the_step_off() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let clock = Clock::start().await;
    let email = "off@example.com";
    let user = app.sign_up(email).await;
    let token = user.access_token.as_str();
    let (secret, _) = enrol(&app, token, &clock).await;
    smtp.wait_for(email, Duration::from_secs(10)).await;
    for vars in [
        json!({}),
        json!({"c": clock.code(&secret, 0), "p": PASSWORD}),
    ] {
        let body = app.gql(DISABLE, vars, Some(token)).await;
        assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    }
    let body = app
        .gql(DISABLE, json!({"p": "not the password"}), Some(token))
        .await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    let body = app.gql(DISABLE, json!({"c": "000000"}), None).await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");
    // Changing the password leaves the factor on.
    let changed = app
        .gql(
            "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) }",
            json!({"c": PASSWORD, "n": "another long passphrase here"}),
            Some(token),
        )
        .await;
    assert_eq!(changed["data"]["changePassword"], true, "{changed}");
    assert_eq!(status(&app, token).await["totp"], true);
    let body = app
        .gql(
            DISABLE,
            json!({"p": "another long passphrase here"}),
            Some(token),
        )
        .await;
    assert_eq!(body["data"]["disableTotp"], true, "{body}");
    assert_eq!(
        status(&app, token).await,
        json!({"enabled": false, "totp": false, "recoveryCodesLeft": 0, "passkeys": 0})
    );
    let notice = smtp.wait_for(email, Duration::from_secs(10)).await;
    assert!(notice.subject.contains("removed"), "{}", notice.subject);
    // No second step any more.
    let plain = app.signed_in(email, "another long passphrase here").await;
    assert_eq!(plain.user_id, user.user_id);
    // Disabling again: nothing to disable.
    let body = app
        .gql(DISABLE, json!({"c": clock.code(&secret, 1)}), Some(token))
        .await;
    assert_eq!(body.code(), "NOT_FOUND", "{body}");
    // Re-enrolling works, and disabling with a code does too.
    let clock = Clock::start().await;
    let (secret, _) = enrol(&app, token, &clock).await;
    let body = app
        .gql(DISABLE, json!({"c": clock.code(&secret, 0)}), Some(token))
        .await;
    assert_eq!(body["data"]["disableTotp"], true, "{body}");
    let actions = audit_actions(&app, &user.user_id).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "mfa.totp_disabled").count(),
        2,
        "{actions:?}"
    );
}

#[tokio::test]
async fn an_email_code_sign_in_needs_the_second_factor() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    let clock = Clock::start().await;
    let email = "coded@example.com";
    let (challenge, mail_code, _) = crate::otp::request(&app, &smtp, email).await;
    let first: Value = crate::otp::verify(&app, email, &challenge, &mail_code)
        .await
        .data("verifyOtp");
    let (secret, _) = enrol(&app, first["accessToken"].as_str().unwrap(), &clock).await;
    smtp.wait_for(email, Duration::from_secs(10)).await;

    let (challenge, mail_code, _) = crate::otp::request(&app, &smtp, email).await;
    let body = crate::otp::verify(&app, email, &challenge, &mail_code).await;
    let (token, methods) = mfa_required(&body, "verifyOtp");
    assert_eq!(methods, ["totp", "recovery"]);
    // The mailed code is spent: it does not give a second mfaToken.
    let again = crate::otp::verify(&app, email, &challenge, &mail_code).await;
    assert_eq!(again.code(), "INVALID_CREDENTIALS", "{again}");
    let done = verify(&app, &token, json!({"totp": clock.code(&secret, 0)})).await;
    assert_eq!(
        done["data"]["verifyMfa"]["session"]["method"], "otp",
        "{done}"
    );
}

#[tokio::test]
async fn a_password_reset_keeps_the_factor_and_hands_out_no_tokens_before_it() {
    let smtp = SmtpServer::start().await;
    let app = app_with_mail(&smtp).await;
    app.update_settings("default", |s| {
        s.password_reset_url = Some("https://app.example.com/reset".into());
    })
    .await;
    let clock = Clock::start().await;
    let email = "forgot@example.com";
    let user = app.sign_up(email).await;
    let (secret, _) = enrol(&app, &user.access_token, &clock).await;
    smtp.wait_for(email, Duration::from_secs(10)).await;
    let body = app
        .gql(crate::reset::REQUEST_RESET, json!({"e": email}), None)
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let reset_token = crate::reset::token_from_mail(&smtp, email).await;
    let new_password = "a fresh passphrase after reset";
    let body = app
        .gql(
            crate::reset::RESET,
            json!({"t": reset_token, "p": new_password}),
            None,
        )
        .await;
    let (token, _) = mfa_required(&body, "resetPassword");
    // The password was reset (and every session ended), the factor stays.
    let old = app.sign_in(email, PASSWORD).await;
    assert_eq!(old.code(), "INVALID_CREDENTIALS", "{old}");
    let me = app
        .gql("{ me { id } }", json!({}), Some(&user.access_token))
        .await;
    assert_eq!(me.code(), "UNAUTHENTICATED", "{me}");
    let done = verify(&app, &token, json!({"totp": clock.code(&secret, 0)})).await;
    let session: AuthPayload = done.data("verifyMfa");
    assert_eq!(status(&app, &session.access_token).await["totp"], true);
    // The next sign-in with the new password asks for the factor again.
    let (next, _) = mfa_required(&app.sign_in(email, new_password).await, "signIn");
    let done = verify(&app, &next, json!({"totp": clock.code(&secret, 1)})).await;
    let _: AuthPayload = done.data("verifyMfa");
}

#[tokio::test]
async fn a_provider_sign_in_needs_the_second_factor_and_keeps_its_connection() {
    let app = crate::oauth::app().await;
    let (idp, client) = crate::oauth::provider("RS256").await;
    let admin = app.machine_token("default", &["admin"]).await;
    crate::oauth::configure(&app, &admin, &idp, &client).await;
    let clock = Clock::start().await;
    let first: Value = crate::oauth::oauth_sign_in(&app, &idp, "alice", false)
        .await
        .data("completeOAuth");
    let user_id = first["user"]["id"].as_str().unwrap().to_owned();
    let (secret, _) = enrol(&app, first["accessToken"].as_str().unwrap(), &clock).await;
    let connections = crate::oauth::count(&app, "connections").await;

    let body = crate::oauth::oauth_sign_in(&app, &idp, "alice", true).await;
    let (token, methods) = mfa_required(&body, "completeOAuth");
    assert_eq!(methods, ["totp", "recovery"]);
    // Nothing of the sign-in is written before the second step.
    assert_eq!(crate::oauth::count(&app, "connections").await, connections);
    let done = verify(&app, &token, json!({"totp": clock.code(&secret, 0)})).await;
    assert_eq!(
        done["data"]["verifyMfa"]["session"]["method"], "oauth",
        "{done}"
    );
    assert_eq!(done["data"]["verifyMfa"]["user"]["id"], json!(user_id));
    // The provider tokens the pending sign-in carried are stored with its session.
    assert_eq!(
        crate::oauth::count(&app, "connections").await,
        connections + 1
    );
    let store = app.store().await;
    let (detail,): (String,) = sqlx::query_as(
        "SELECT detail FROM audit_events WHERE user_id = $1 AND action = 'user.sign_in' \
         ORDER BY at DESC, id DESC LIMIT 1",
    )
    .bind(&user_id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["provider"], "idp", "{detail}");
    assert_eq!(detail["mfa"], "totp", "{detail}");

    // A native app's id_token: the same second step.
    let tokens = idp.app_tokens(&client, "alice", "native-nonce").await;
    let body = app
        .gql(
            "mutation($input: IdTokenInput!) { signInWithIdToken(input: $input) { accessToken } }",
            json!({"input": {"provider": "idp", "idToken": tokens["id_token"], "nonce": "native-nonce"}}),
            None,
        )
        .await;
    let (token, _) = mfa_required(&body, "signInWithIdToken");
    let done = verify(&app, &token, json!({"totp": clock.code(&secret, 1)})).await;
    assert_eq!(
        done["data"]["verifyMfa"]["session"]["method"], "id_token",
        "{done}"
    );
    assert_eq!(done["data"]["verifyMfa"]["user"]["id"], json!(user_id));
}

#[tokio::test]
async fn the_required_policy_makes_a_sign_in_enrol_before_its_session_starts() {
    let app = spawn_app_with(|c| c.admin_emails = vec!["boss@example.com".into()]).await;
    let clock = Clock::start().await;
    let boss = app.sign_up_admin("boss@example.com").await;
    app.sign_up("worker@example.com").await;
    let set = |policy: &'static str| json!({"input": {"account": {"mfa": policy}}});
    const UPDATE: &str =
        "mutation($input: SettingsInput!) { updateSettings(input: $input) { account { mfa } } }";
    let bad = app
        .gql(UPDATE, set("SOMETIMES"), Some(&boss.access_token))
        .await;
    assert_eq!(bad.code(), "BAD_USER_INPUT", "{bad}");

    // `ADMINS`: the admin is held for enrolment, the worker is not.
    let body = app
        .gql(UPDATE, set("ADMINS"), Some(&boss.access_token))
        .await;
    assert_eq!(
        body["data"]["updateSettings"]["account"]["mfa"], "ADMINS",
        "{body}"
    );
    let _ = app.signed_in("worker@example.com", PASSWORD).await;
    let (held, methods) = mfa_required(&app.sign_in("boss@example.com", PASSWORD).await, "signIn");
    assert_eq!(methods, ["enroll"]);
    assert!(!held.is_empty());

    let body = app
        .gql(UPDATE, set("REQUIRED"), Some(&boss.access_token))
        .await;
    assert_eq!(
        body["data"]["updateSettings"]["account"]["mfa"], "REQUIRED",
        "{body}"
    );
    let settings = app
        .gql(
            "{ settings { account { mfa } } }",
            json!({}),
            Some(&boss.access_token),
        )
        .await;
    assert_eq!(
        settings["data"]["settings"]["account"]["mfa"], "REQUIRED",
        "{settings}"
    );

    let email = "worker@example.com";
    let (token, methods) = mfa_required(&app.sign_in(email, PASSWORD).await, "signIn");
    assert_eq!(methods, ["enroll"]);
    // The enrolment token is for enrolling only: not verifyMfa, not a bearer.
    let body = verify(&app, &token, json!({"totp": "123456"})).await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    let body = app.gql(START, json!({}), Some(&token)).await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");
    // Neither bearer nor mfaToken: UNAUTHENTICATED.
    let body = app.gql(START, json!({}), None).await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");

    let started: Value = app
        .gql(START, json!({"t": token}), None)
        .await
        .data("startTotpEnrollment");
    let secret = started["secret"].as_str().unwrap().to_owned();
    let wrong = app
        .gql(
            CONFIRM,
            json!({"c": clock.code(&secret, 4), "t": token}),
            None,
        )
        .await;
    assert_eq!(wrong.code(), "INVALID_CREDENTIALS", "{wrong}");
    let confirmed: Value = app
        .gql(
            CONFIRM,
            json!({"c": clock.code(&secret, -1), "t": token}),
            None,
        )
        .await
        .data("confirmTotpEnrollment");
    let codes = confirmed["recoveryCodes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let session: AuthPayload = serde_json::from_value(confirmed["signIn"].clone()).unwrap();
    assert_eq!(confirmed["signIn"]["session"]["method"], "password");
    assert_eq!(status(&app, &session.access_token).await["totp"], true);
    // Spent: the enrolment token opens nothing more.
    let body = app.gql(START, json!({"t": token}), None).await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");

    // From now on the usual second step; and the factor cannot be switched off while the
    // policy demands one.
    let next = password_step(&app, email).await;
    let done = verify(&app, &next, json!({"totp": clock.code(&secret, 0)})).await;
    let _: AuthPayload = done.data("verifyMfa");
    let body = app
        .gql(DISABLE, json!({"p": PASSWORD}), Some(&session.access_token))
        .await;
    assert_eq!(body.code(), "FORBIDDEN", "{body}");
    assert_eq!(status(&app, &session.access_token).await["totp"], true);

    // A sign-up under the policy is held for enrolment too: no tokens.
    let body = app
        .gql(
            crate::support::SIGN_UP,
            json!({"email": "newbie@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    let (_, methods) = mfa_required(&body, "signUp");
    assert_eq!(methods, ["enroll"]);
}

#[tokio::test]
async fn an_admin_resets_the_factors_of_a_user_of_their_tenant_only() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(move |c| {
        c.smtp_url = Some(url);
        c.admin_emails = vec!["boss@example.com".into()];
    })
    .await;
    let clock = Clock::start().await;
    let boss = app.sign_up_admin("boss@example.com").await;
    let email = "lost@example.com";
    let user = app.sign_up(email).await;
    let (secret, _) = enrol(&app, &user.access_token, &clock).await;
    smtp.wait_for(email, Duration::from_secs(10)).await;

    let body = app
        .gql(
            RESET_MFA,
            json!({"u": user.user_id}),
            Some(&user.access_token),
        )
        .await;
    assert_eq!(body.code(), "FORBIDDEN", "{body}");
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "other").await;
    let other_admin = app.machine_token("other", &["admin"]).await;
    let (_, body) = app
        .gql_raw(
            RESET_MFA,
            json!({"u": user.user_id}),
            Some(&other_admin),
            Some("other"),
        )
        .await;
    assert_eq!(body.code(), "NOT_FOUND", "{body}");
    // A pending sign-in ends with the reset.
    let pending = password_step(&app, email).await;

    let body = app
        .gql(
            RESET_MFA,
            json!({"u": user.user_id}),
            Some(&boss.access_token),
        )
        .await;
    assert_eq!(body["data"]["adminResetMfa"], true, "{body}");
    let body = app
        .gql(
            RESET_MFA,
            json!({"u": user.user_id}),
            Some(&boss.access_token),
        )
        .await;
    assert_eq!(body["data"]["adminResetMfa"], false, "{body}");
    let notice = smtp.wait_for(email, Duration::from_secs(10)).await;
    assert!(
        notice.text.contains("by an administrator"),
        "{}",
        notice.text
    );

    let body = verify(&app, &pending, json!({"totp": clock.code(&secret, 0)})).await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");
    // The user's session went on; the next sign-in has no second step.
    assert_eq!(status(&app, &user.access_token).await["enabled"], false);
    let plain = app.signed_in(email, PASSWORD).await;
    assert_eq!(plain.user_id, user.user_id);
    let store = app.store().await;
    let (actor,): (String,) = sqlx::query_as(
        "SELECT actor FROM audit_events WHERE user_id = $1 AND action = 'admin.mfa_reset' LIMIT 1",
    )
    .bind(&user.user_id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(actor, format!("user:{}", boss.user_id));

    // An account disabled while its sign-in waits for the factor gets no session.
    let clock = Clock::start().await;
    let (secret, _) = enrol(&app, &plain.access_token, &clock).await;
    let pending = password_step(&app, email).await;
    let body = app
        .gql(
            "mutation($id: ID!) { adminUpdateUser(id: $id, input: {disabled: true}) { disabled } }",
            json!({"id": user.user_id}),
            Some(&boss.access_token),
        )
        .await;
    assert_eq!(body["data"]["adminUpdateUser"]["disabled"], true, "{body}");
    let body = verify(&app, &pending, json!({"totp": clock.code(&secret, 0)})).await;
    assert_eq!(body.code(), "FORBIDDEN", "{body}");
    let (used,): (i64,) = sqlx::query_as("SELECT last_step FROM mfa_totp WHERE user_id = $1")
        .bind(&user.user_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        used as u64,
        clock.step - 1,
        "the refused sign-in spent no code"
    );
    // Deleting the account takes its factors and pending sign-ins with it.
    let body = app
        .gql(
            "mutation($id: ID!) { adminDeleteUser(id: $id) }",
            json!({"id": user.user_id}),
            Some(&boss.access_token),
        )
        .await;
    assert_eq!(body["data"]["adminDeleteUser"], true, "{body}");
    for table in ["mfa_totp", "mfa_recovery_codes", "mfa_challenges"] {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE user_id = $1");
        let (left,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&user.user_id)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0, "{table}");
    }
}
