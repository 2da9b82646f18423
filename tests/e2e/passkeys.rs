//! Passkeys over real HTTP on the test database: registration, passwordless sign-in, and the
//! attacks on both, with a software authenticator written here (below). webauthn-rs's own
//! soft authenticators (`webauthn-authenticator-rs` 0.5: `SoftPasskey`, `SoftToken`) refuse
//! resident keys and answer without a user handle, so they cannot make the discoverable
//! credentials this API registers; this one can, and can also lie (another origin, no user
//! verification, a counter that goes back, a key it does not hold) as an attacker would.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{AuthPayload, Gql, PASSWORD, SmtpServer, TestApp, code, spawn_app_with};
use soft::Authenticator;

/// The page origin the tests sign from, on the relying party `localhost`.
const ORIGIN: &str = "http://localhost:5173";
const RP_ID: &str = "localhost";

const START_REGISTRATION: &str = "mutation { startPasskeyRegistration { options } }";
const FINISH_REGISTRATION: &str = "mutation($name: String!, $credential: JSON!) { finishPasskeyRegistration(input: {name: $name, credential: $credential}) { id name credentialId backupEligible backedUp createdAt lastUsedAt } }";
const START_SIGN_IN: &str = "mutation { startPasskeySignIn { challengeId options } }";
const FINISH_SIGN_IN: &str = "mutation($id: ID!, $credential: JSON!) { finishPasskeySignIn(input: {challengeId: $id, credential: $credential}) { accessToken refreshToken user { id roles } session { id method } } }";
const PASSKEYS: &str = "{ passkeys { id name credentialId lastUsedAt } }";
const RENAME: &str =
    "mutation($id: ID!, $name: String!) { renamePasskey(id: $id, name: $name) { id name } }";
const DELETE: &str = "mutation($id: ID!) { deletePasskey(id: $id) }";

async fn passkey_app() -> TestApp {
    spawn_app_with(|config| {
        config.webauthn_rp_id = Some(RP_ID.into());
        config.webauthn_origins = vec![ORIGIN.into()];
    })
    .await
}

/// `startPasskeyRegistration` for `bearer`: the creation options.
async fn start_registration(app: &TestApp, bearer: &str) -> Value {
    let body = app.gql(START_REGISTRATION, json!({}), Some(bearer)).await;
    body.data::<Value>("startPasskeyRegistration")["options"].clone()
}

/// Registers a passkey named `name` made by `authenticator`; the `Passkey`.
async fn register(
    app: &TestApp,
    bearer: &str,
    authenticator: &mut Authenticator,
    name: &str,
) -> Value {
    let options = start_registration(app, bearer).await;
    let credential = authenticator
        .create(&options)
        .expect("authenticator creates");
    let body = app
        .gql(
            FINISH_REGISTRATION,
            json!({"name": name, "credential": credential}),
            Some(bearer),
        )
        .await;
    body.data("finishPasskeyRegistration")
}

/// `startPasskeySignIn` in `tenant`: (challengeId, options).
async fn start_sign_in(app: &TestApp, tenant: Option<&str>) -> (String, Value) {
    let (_, body) = app.gql_raw(START_SIGN_IN, json!({}), None, tenant).await;
    let start: Value = body.data("startPasskeySignIn");
    (
        start["challengeId"]
            .as_str()
            .expect("challengeId")
            .to_owned(),
        start["options"].clone(),
    )
}

async fn finish_sign_in(app: &TestApp, tenant: Option<&str>, id: &str, credential: &Value) -> Gql {
    app.gql_raw(
        FINISH_SIGN_IN,
        json!({"id": id, "credential": credential}),
        None,
        tenant,
    )
    .await
    .1
}

/// A whole passkey sign-in in the default tenant with `authenticator`'s resident credential.
async fn sign_in_with(app: &TestApp, authenticator: &mut Authenticator) -> Gql {
    let (id, options) = start_sign_in(app, None).await;
    let assertion = authenticator.get(&options).expect("authenticator signs");
    finish_sign_in(app, None, &id, &assertion).await
}

async fn passkeys(app: &TestApp, bearer: &str) -> Vec<Value> {
    app.gql(PASSKEYS, json!({}), Some(bearer))
        .await
        .data::<Vec<Value>>("passkeys")
}

#[tokio::test]
async fn a_registered_passkey_signs_in_alone_and_is_told_by_mail() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(move |config| {
        config.webauthn_rp_id = Some(RP_ID.into());
        config.webauthn_origins = vec![ORIGIN.into()];
        config.smtp_url = Some(url);
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let mut laptop = Authenticator::new(RP_ID, ORIGIN);

    let options = start_registration(&app, &ada.access_token).await;
    let public_key = &options["publicKey"];
    assert_eq!(public_key["rp"]["id"], RP_ID, "{options}");
    assert_eq!(public_key["user"]["name"], "ada@example.com");
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"], "required",
        "{options}"
    );
    assert_eq!(
        public_key["authenticatorSelection"]["requireResidentKey"],
        true
    );
    assert_eq!(
        public_key["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(public_key["excludeCredentials"], json!([]), "{options}");
    let credential = laptop.create(&options).expect("created");
    let passkey: Value = app
        .gql(
            FINISH_REGISTRATION,
            json!({"name": "  Laptop ", "credential": credential}),
            Some(&ada.access_token),
        )
        .await
        .data("finishPasskeyRegistration");
    assert_eq!(passkey["name"], "Laptop");
    assert_eq!(passkey["credentialId"], credential["id"]);
    assert_eq!(passkey["lastUsedAt"], Value::Null);
    let mail = smtp
        .wait_for("ada@example.com", Duration::from_secs(10))
        .await;
    assert!(
        mail.subject.contains("passkey was added"),
        "{}",
        mail.subject
    );
    assert!(mail.text.contains("\"Laptop\""), "{}", mail.text);

    // The next registration excludes the credential the user has.
    let again = start_registration(&app, &ada.access_token).await;
    assert_eq!(
        again["publicKey"]["excludeCredentials"][0]["id"], credential["id"],
        "{again}"
    );
    assert!(
        laptop.create(&again).is_err(),
        "excluded credential made again"
    );

    // Sign-in names nobody: no user, no credentials listed.
    let (challenge_id, options) = start_sign_in(&app, None).await;
    let request = &options["publicKey"];
    assert_eq!(request["allowCredentials"], json!([]), "{options}");
    assert_eq!(request["rpId"], RP_ID);
    assert_eq!(request["userVerification"], "required");
    assert!(options.get("mediation").is_none(), "{options}");
    let assertion = laptop.get(&options).expect("signed");
    let body = finish_sign_in(&app, None, &challenge_id, &assertion).await;
    let signed_in: AuthPayload = body.data("finishPasskeySignIn");
    assert_eq!(signed_in.user_id, ada.user_id);
    assert_eq!(
        body["data"]["finishPasskeySignIn"]["session"]["method"],
        "passkey"
    );
    let me = app
        .gql("{ me { id } }", json!({}), Some(&signed_in.access_token))
        .await;
    assert_eq!(me["data"]["me"]["id"], json!(ada.user_id), "{me}");

    // The counter and the last use were stored.
    let listed = passkeys(&app, &ada.access_token).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0]["lastUsedAt"].is_string(), "{listed:?}");
    let store = app.store().await;
    let count: i64 = sqlx::query_scalar("SELECT sign_count FROM passkeys")
        .fetch_one(store.pool())
        .await
        .expect("row");
    assert_eq!(count, 1);

    // Audit: registration and a sign-in by passkey.
    let events = store
        .audit_events(&app.tenant_id().await, "passkey.registered", 5)
        .await
        .expect("audit");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail["name"], "Laptop");
    let sign_ins = store
        .audit_events(&app.tenant_id().await, "user.sign_in", 5)
        .await
        .expect("audit");
    assert_eq!(sign_ins[0].detail["method"], "passkey", "{:?}", sign_ins[0]);

    // Deleting it tells the owner too.
    let id = passkey["id"].as_str().unwrap();
    let deleted = app
        .gql(DELETE, json!({"id": id}), Some(&ada.access_token))
        .await;
    assert_eq!(deleted["data"]["deletePasskey"], true, "{deleted}");
    let mail = smtp
        .wait_for("ada@example.com", Duration::from_secs(10))
        .await;
    assert!(
        mail.subject.contains("passkey was removed"),
        "{}",
        mail.subject
    );
}

#[tokio::test]
async fn a_challenge_answers_once_even_when_raced() {
    let app = passkey_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let mut key = Authenticator::new(RP_ID, ORIGIN);
    register(&app, &ada.access_token, &mut key, "Key").await;

    let (id, options) = start_sign_in(&app, None).await;
    let assertion = key.get(&options).expect("signed");
    finish_sign_in(&app, None, &id, &assertion)
        .await
        .data::<AuthPayload>("finishPasskeySignIn");
    // The same answer again: the challenge is gone.
    let replay = finish_sign_in(&app, None, &id, &assertion).await;
    assert_eq!(replay.code(), "INVALID_CREDENTIALS", "{replay}");

    // Eight copies of one answer at once: exactly one session.
    let (id, options) = start_sign_in(&app, None).await;
    let assertion = key.get(&options).expect("signed");
    let raced =
        futures_util::future::join_all((0..8).map(|_| finish_sign_in(&app, None, &id, &assertion)))
            .await;
    let won = raced.iter().filter(|b| b["errors"].is_null()).count();
    assert_eq!(won, 1, "{raced:?}");
    for lost in raced.iter().filter(|b| !b["errors"].is_null()) {
        assert_eq!(lost.code(), "INVALID_CREDENTIALS", "{lost}");
    }

    // An unknown challenge id, and a registration answer replayed.
    let unknown = finish_sign_in(&app, None, "nope", &assertion).await;
    assert_eq!(unknown.code(), "INVALID_CREDENTIALS");
    let options = start_registration(&app, &ada.access_token).await;
    let mut phone = Authenticator::new(RP_ID, ORIGIN);
    let credential = phone.create(&options).expect("created");
    let finish = |name: &'static str| {
        app.gql(
            FINISH_REGISTRATION,
            json!({"name": name, "credential": credential.clone()}),
            Some(&ada.access_token),
        )
    };
    finish("Phone")
        .await
        .data::<Value>("finishPasskeyRegistration");
    let again = finish("Phone again").await;
    assert_eq!(again.code(), "INVALID_CREDENTIALS", "{again}");
    assert_eq!(passkeys(&app, &ada.access_token).await.len(), 2);
}

#[tokio::test]
async fn a_deleted_passkey_never_signs_in_again() {
    let app = passkey_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let mut key = Authenticator::new(RP_ID, ORIGIN);
    let passkey = register(&app, &ada.access_token, &mut key, "Key").await;
    // A sign-in started before the deletion and finished after it fails too.
    let (id, options) = start_sign_in(&app, None).await;
    let deleted = app
        .gql(
            DELETE,
            json!({"id": passkey["id"]}),
            Some(&ada.access_token),
        )
        .await;
    assert_eq!(deleted["data"]["deletePasskey"], true, "{deleted}");
    let assertion = key.get(&options).expect("signed");
    let late = finish_sign_in(&app, None, &id, &assertion).await;
    assert_eq!(late.code(), "INVALID_CREDENTIALS", "{late}");
    let fresh = sign_in_with(&app, &mut key).await;
    assert_eq!(fresh.code(), "INVALID_CREDENTIALS", "{fresh}");
    assert!(passkeys(&app, &ada.access_token).await.is_empty());
    let gone = app
        .gql(
            DELETE,
            json!({"id": passkey["id"]}),
            Some(&ada.access_token),
        )
        .await;
    assert_eq!(gone.code(), "NOT_FOUND");
    let store = app.store().await;
    let failures = store
        .audit_events(&app.tenant_id().await, "passkey.sign_in_failed", 5)
        .await
        .expect("audit");
    assert_eq!(failures.len(), 2, "{failures:?}");
}

#[tokio::test]
async fn a_credential_of_one_tenant_never_signs_in_to_another() {
    let app = passkey_app().await;
    let platform = app.machine_token("default", &["platform"]).await;
    let created = app
        .gql(
            "mutation { createTenant(input: {slug: \"acme\", name: \"Acme\"}) { slug } }",
            json!({}),
            Some(&platform),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    let ada = app.sign_up("ada@example.com").await;
    let mut key = Authenticator::new(RP_ID, ORIGIN);
    register(&app, &ada.access_token, &mut key, "Key").await;
    // Same address in acme, a different account without passkeys.
    app.sign_up_in("ada@example.com", Some("acme")).await;

    let (id, options) = start_sign_in(&app, Some("acme")).await;
    let assertion = key.get(&options).expect("signed");
    let away = finish_sign_in(&app, Some("acme"), &id, &assertion).await;
    assert_eq!(away.code(), "INVALID_CREDENTIALS", "{away}");
    // A challenge of one tenant is unknown in the other.
    let (home_id, options) = start_sign_in(&app, None).await;
    let assertion = key.get(&options).expect("signed");
    let crossed = finish_sign_in(&app, Some("acme"), &home_id, &assertion).await;
    assert_eq!(crossed.code(), "INVALID_CREDENTIALS", "{crossed}");
    // At home it still works (a fresh challenge).
    sign_in_with(&app, &mut key)
        .await
        .data::<AuthPayload>("finishPasskeySignIn");
}

#[tokio::test]
async fn another_users_passkey_is_not_found() {
    let app = passkey_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let eve = app.sign_up("eve@example.com").await;
    let mut key = Authenticator::new(RP_ID, ORIGIN);
    let passkey = register(&app, &ada.access_token, &mut key, "Key").await;
    let id = passkey["id"].as_str().unwrap();
    let rename = app
        .gql(
            RENAME,
            json!({"id": id, "name": "mine"}),
            Some(&eve.access_token),
        )
        .await;
    assert_eq!(rename.code(), "NOT_FOUND", "{rename}");
    let delete = app
        .gql(DELETE, json!({"id": id}), Some(&eve.access_token))
        .await;
    assert_eq!(delete.code(), "NOT_FOUND", "{delete}");
    assert!(passkeys(&app, &eve.access_token).await.is_empty());
    let listed = passkeys(&app, &ada.access_token).await;
    assert_eq!(listed[0]["name"], "Key");

    // The owner renames it; bad names are refused with the field named.
    let renamed = app
        .gql(
            RENAME,
            json!({"id": id, "name": " Yubikey "}),
            Some(&ada.access_token),
        )
        .await;
    assert_eq!(
        renamed["data"]["renamePasskey"]["name"], "Yubikey",
        "{renamed}"
    );
    for bad in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
        let refused = app
            .gql(
                RENAME,
                json!({"id": id, "name": bad}),
                Some(&ada.access_token),
            )
            .await;
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{bad:?}: {refused}");
        assert_eq!(refused.error().extensions["field"], "name");
    }
    let store = app.store().await;
    let renames = store
        .audit_events(&app.tenant_id().await, "passkey.renamed", 5)
        .await
        .expect("audit");
    assert_eq!(renames.len(), 1);
    // Without a session none of it answers.
    let anonymous = app.gql(PASSKEYS, json!({}), None).await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    let anonymous = app.gql(START_REGISTRATION, json!({}), None).await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn forged_and_malformed_answers_are_refused() {
    let app = passkey_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let eve = app.sign_up("eve@example.com").await;
    let mut key = Authenticator::new(RP_ID, ORIGIN);
    register(&app, &ada.access_token, &mut key, "Key").await;

    // Signed on another origin (a phishing page) or for another relying party.
    for (rp, origin) in [(RP_ID, "http://localhost:6666"), ("evil.test", ORIGIN)] {
        let mut phished = key.clone();
        phished.rp_id = rp.into();
        phished.origin = origin.into();
        let body = sign_in_with(&app, &mut phished).await;
        assert_eq!(body.code(), "INVALID_CREDENTIALS", "{origin}: {body}");
    }
    // Without user verification.
    let mut lazy = key.clone();
    lazy.user_verified = false;
    assert_eq!(
        sign_in_with(&app, &mut lazy).await.code(),
        "INVALID_CREDENTIALS"
    );
    // Eve's authenticator claims Ada's credential id, signing with its own key.
    let mut forged = Authenticator::new(RP_ID, ORIGIN);
    forged.steal_id(&key, &ada.user_id);
    assert_eq!(
        sign_in_with(&app, &mut forged).await.code(),
        "INVALID_CREDENTIALS"
    );
    // Ada's credential with the user handle of Eve.
    let mut swapped = key.clone();
    swapped.set_user_handle(&eve.user_id);
    assert_eq!(
        sign_in_with(&app, &mut swapped).await.code(),
        "INVALID_CREDENTIALS"
    );
    // A clone whose counter is behind the stored one (the original signed meanwhile).
    let mut clone = key.clone();
    sign_in_with(&app, &mut key)
        .await
        .data::<AuthPayload>("finishPasskeySignIn");
    assert_eq!(
        sign_in_with(&app, &mut clone).await.code(),
        "INVALID_CREDENTIALS"
    );
    // The original still signs in.
    sign_in_with(&app, &mut key)
        .await
        .data::<AuthPayload>("finishPasskeySignIn");

    // Garbage is BAD_USER_INPUT naming the field, and does not use up the challenge.
    let (id, options) = start_sign_in(&app, None).await;
    for garbage in [json!("x"), json!({}), json!({"id": 1, "response": []})] {
        let body = finish_sign_in(&app, None, &id, &garbage).await;
        assert_eq!(body.code(), "BAD_USER_INPUT", "{garbage}: {body}");
        assert_eq!(body.error().extensions["field"], "credential");
    }
    let assertion = key.get(&options).expect("signed");
    finish_sign_in(&app, None, &id, &assertion)
        .await
        .data::<AuthPayload>("finishPasskeySignIn");

    // Registration: the same credential id twice is a conflict, whoever registers it.
    let options = start_registration(&app, &eve.access_token).await;
    let mut copycat = Authenticator::new(RP_ID, ORIGIN);
    copycat.steal_id(&key, &eve.user_id);
    copycat.allow_duplicates = true;
    let credential = copycat.create(&options).expect("created");
    let body = app
        .gql(
            FINISH_REGISTRATION,
            json!({"name": "copy", "credential": credential}),
            Some(&eve.access_token),
        )
        .await;
    assert_eq!(body.code(), "CONFLICT", "{body}");
    // Registration answered for another origin, or without user verification.
    let mut phished = Authenticator::new(RP_ID, "http://localhost:6666");
    let options = start_registration(&app, &eve.access_token).await;
    let credential = phished.create(&options).expect("created");
    let body = app
        .gql(
            FINISH_REGISTRATION,
            json!({"name": "x", "credential": credential}),
            Some(&eve.access_token),
        )
        .await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    assert_eq!(body.error().extensions["field"], "credential");
    let mut lazy = Authenticator::new(RP_ID, ORIGIN);
    lazy.user_verified = false;
    let options = start_registration(&app, &eve.access_token).await;
    let credential = lazy.create(&options).expect("created");
    let body = app
        .gql(
            FINISH_REGISTRATION,
            json!({"name": "x", "credential": credential}),
            Some(&eve.access_token),
        )
        .await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    // Ada's registration challenge answered with Eve's session.
    let options = start_registration(&app, &ada.access_token).await;
    let credential = Authenticator::new(RP_ID, ORIGIN)
        .create(&options)
        .expect("created");
    let body = app
        .gql(
            FINISH_REGISTRATION,
            json!({"name": "x", "credential": credential}),
            Some(&eve.access_token),
        )
        .await;
    assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    assert!(passkeys(&app, &eve.access_token).await.is_empty());
    let store = app.store().await;
    let failed = store
        .audit_events(&app.tenant_id().await, "passkey.registration_failed", 5)
        .await
        .expect("audit");
    assert_eq!(failed.len(), 2, "{failed:?}");
}

#[tokio::test]
async fn a_disabled_account_is_refused() {
    let app = passkey_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let mut key = Authenticator::new(RP_ID, ORIGIN);
    register(&app, &ada.access_token, &mut key, "Key").await;
    let store = app.store().await;
    sqlx::query("UPDATE users SET disabled_at = 1 WHERE id = $1")
        .bind(&ada.user_id)
        .execute(store.pool())
        .await
        .expect("disabled");
    let body = sign_in_with(&app, &mut key).await;
    assert_eq!(body.code(), "FORBIDDEN", "{body}");
    assert!(body.error().message.contains("disabled"), "{body}");
}

#[tokio::test]
async fn passkeys_are_off_without_a_domain() {
    // The test issuer is http://127.0.0.1:port: an IP address is no relying-party id.
    let app = spawn_app_with(|_| {}).await;
    let ada = app.sign_up("ada@example.com").await;
    let body = app
        .gql(START_REGISTRATION, json!({}), Some(&ada.access_token))
        .await;
    assert_eq!(body.code(), "FORBIDDEN", "{body}");
    assert!(
        body.error().message.contains("AUTH_WEBAUTHN_RP_ID"),
        "{body}"
    );
    let body = app.gql(START_SIGN_IN, json!({}), None).await;
    assert_eq!(code(&body), "FORBIDDEN");
    // An explicit relying party that cannot work stops start-up.
    let mut config = app.config.clone();
    config.webauthn_rp_id = Some("example.com".into());
    config.webauthn_origins = vec!["https://example.org".into()];
    let error = auth_api::startup::build(config)
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{error:#}").contains("AUTH_WEBAUTHN_ORIGINS"),
        "{error:#}"
    );
}

const VERIFY_MFA: &str = "mutation($t: String!, $pk: JSON) { verifyMfa(input: {mfaToken: $t, passkey: $pk}) { accessToken refreshToken user { id roles } session { id method } } }";

/// A password sign-in of an account with a factor: its `MFA_REQUIRED` extensions.
async fn mfa_step(app: &TestApp, email: &str) -> Value {
    let body = app.sign_in(email, PASSWORD).await;
    assert_eq!(body.code(), "MFA_REQUIRED", "{body}");
    body.error().extensions
}

async fn verify_mfa(app: &TestApp, token: &Value, assertion: &Value) -> Gql {
    app.gql(VERIFY_MFA, json!({"t": token, "pk": assertion}), None)
        .await
}

#[tokio::test]
async fn a_passkey_is_the_second_factor_of_a_password_sign_in() {
    let app = passkey_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let mut key = Authenticator::new(RP_ID, ORIGIN);
    let passkey = register(&app, &ada.access_token, &mut key, "Key").await;

    let step = mfa_step(&app, "ada@example.com").await;
    assert_eq!(step["methods"], json!(["passkey"]), "{step}");
    assert!(step.get("accessToken").is_none());
    let options = &step["passkeyOptions"];
    assert_eq!(
        options["publicKey"]["allowCredentials"][0]["id"], passkey["credentialId"],
        "{step}"
    );
    assert_eq!(options["publicKey"]["rpId"], RP_ID);

    // A wrong answer counts as a wrong factor and leaves the step open: another
    // authenticator, another origin, no user verification.
    let mut stranger = Authenticator::new(RP_ID, ORIGIN);
    stranger.steal_id(&key, &ada.user_id);
    let mut phished = key.clone();
    phished.origin = "http://localhost:6666".into();
    let mut lazy = key.clone();
    lazy.user_verified = false;
    for liar in [&mut stranger, &mut phished, &mut lazy] {
        let assertion = liar.get(options).expect("signed");
        let body = verify_mfa(&app, &step["mfaToken"], &assertion).await;
        assert_eq!(body.code(), "INVALID_CREDENTIALS", "{body}");
    }
    let garbage = verify_mfa(&app, &step["mfaToken"], &json!({"id": 1})).await;
    assert_eq!(garbage.code(), "BAD_USER_INPUT", "{garbage}");
    // The right passkey completes the sign-in.
    let assertion = key.get(options).expect("signed");
    let body = verify_mfa(&app, &step["mfaToken"], &assertion).await;
    let signed_in: AuthPayload = body.data("verifyMfa");
    assert_eq!(signed_in.user_id, ada.user_id);
    assert_eq!(body["data"]["verifyMfa"]["session"]["method"], "password");
    // The same assertion for the next sign-in answers another challenge: refused.
    let next = mfa_step(&app, "ada@example.com").await;
    let replay = verify_mfa(&app, &next["mfaToken"], &assertion).await;
    assert_eq!(replay.code(), "INVALID_CREDENTIALS", "{replay}");
    let fresh = key.get(&next["passkeyOptions"]).expect("signed");
    verify_mfa(&app, &next["mfaToken"], &fresh)
        .await
        .data::<AuthPayload>("verifyMfa");

    // The passkey alone still signs in without a second step: it is both factors.
    sign_in_with(&app, &mut key)
        .await
        .data::<AuthPayload>("finishPasskeySignIn");
    let store = app.store().await;
    let failures = store
        .audit_events(&app.tenant_id().await, "passkey.sign_in_failed", 10)
        .await
        .expect("audit");
    assert!(
        failures.iter().all(|e| e.detail["step"] == "second_factor"),
        "{failures:?}"
    );
    assert_eq!(failures.len(), 4, "{failures:?}");
}

#[tokio::test]
async fn an_admin_reset_removes_the_passkeys() {
    let app = spawn_app_with(|config| {
        config.webauthn_rp_id = Some(RP_ID.into());
        config.webauthn_origins = vec![ORIGIN.into()];
        config.admin_emails = vec!["admin@example.com".into()];
    })
    .await;
    let admin = app.sign_up_admin("admin@example.com").await;
    let ada = app.sign_up("ada@example.com").await;
    let mut key = Authenticator::new(RP_ID, ORIGIN);
    register(&app, &ada.access_token, &mut key, "Key").await;
    let status = app
        .gql(
            "{ me { mfa { enabled passkeys } } }",
            json!({}),
            Some(&ada.access_token),
        )
        .await;
    assert_eq!(
        status["data"]["me"]["mfa"],
        json!({"enabled": true, "passkeys": 1}),
        "{status}"
    );
    let reset = app
        .gql(
            "mutation($u: ID!) { adminResetMfa(userId: $u) }",
            json!({"u": ada.user_id}),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(reset["data"]["adminResetMfa"], true, "{reset}");
    assert!(passkeys(&app, &ada.access_token).await.is_empty());
    assert_eq!(
        sign_in_with(&app, &mut key).await.code(),
        "INVALID_CREDENTIALS"
    );
    // And the password alone signs in again.
    app.signed_in("ada@example.com", PASSWORD).await;
}

impl TestApp {
    /// The default tenant's id.
    async fn tenant_id(&self) -> String {
        let store = self.store().await;
        store.tenant_by_slug("default").await.expect("tenant").id
    }
}

mod soft {
    //! A WebAuthn authenticator in software: P-256 (ES256) credentials kept as resident
    //! keys, `none` attestation, and answers shaped as `credential.toJSON()` in a browser.
    //! Its fields let a test make it lie.

    use aws_lc_rs::digest::{SHA256, digest};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde_json::{Value, json};
    use std::sync::Arc;

    #[derive(Clone)]
    struct Credential {
        id: Vec<u8>,
        key: Arc<EcdsaKeyPair>,
        user_handle: Vec<u8>,
        counter: u32,
    }

    /// One authenticator (a laptop's, a phone's) holding resident credentials.
    #[derive(Clone)]
    pub(crate) struct Authenticator {
        /// The relying party it signs for (a real one takes it from the options).
        pub(crate) rp_id: String,
        /// The origin its browser puts in `clientDataJSON`.
        pub(crate) origin: String,
        /// Whether it verified the user (PIN, biometric).
        pub(crate) user_verified: bool,
        /// Answer every registration with the credential id it holds (an attacker
        /// registering an id it saw), even when the options exclude it.
        pub(crate) allow_duplicates: bool,
        credentials: Vec<Credential>,
    }

    fn cbor_head(major: u8, len: usize, out: &mut Vec<u8>) {
        let major = major << 5;
        match len {
            0..=23 => out.push(major | len as u8),
            24..=255 => out.extend([major | 24, len as u8]),
            _ => {
                out.push(major | 25);
                out.extend((len as u16).to_be_bytes());
            }
        }
    }

    fn cbor_bytes(bytes: &[u8], out: &mut Vec<u8>) {
        cbor_head(2, bytes.len(), out);
        out.extend(bytes);
    }

    fn cbor_text(text: &str, out: &mut Vec<u8>) {
        cbor_head(3, text.len(), out);
        out.extend(text.as_bytes());
    }

    /// The COSE_Key of a P-256 public key (uncompressed point `04 || x || y`).
    fn cose_key(point: &[u8]) -> Vec<u8> {
        let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&point[1..33], &mut out);
        out.push(0x22);
        cbor_bytes(&point[33..65], &mut out);
        out
    }

    impl Authenticator {
        pub(crate) fn new(rp_id: &str, origin: &str) -> Self {
            Self {
                rp_id: rp_id.into(),
                origin: origin.into(),
                user_verified: true,
                allow_duplicates: false,
                credentials: Vec::new(),
            }
        }

        /// Hold a credential with `other`'s first credential id, but a key of its own, for
        /// the user `user_id` (an attacker copying an id it saw).
        pub(crate) fn steal_id(&mut self, other: &Authenticator, user_id: &str) {
            let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
            self.credentials.push(Credential {
                id: other.credentials[0].id.clone(),
                key: Arc::new(key),
                user_handle: user_handle(user_id),
                counter: 0,
            });
        }

        /// Answer with another user handle.
        pub(crate) fn set_user_handle(&mut self, user_id: &str) {
            self.credentials[0].user_handle = user_handle(user_id);
        }

        fn flags(&self, attested: bool) -> u8 {
            let mut flags = 0x01; // user present
            if self.user_verified {
                flags |= 0x04;
            }
            if attested {
                flags |= 0x40;
            }
            flags
        }

        fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
            serde_json::to_vec(&json!({
                "type": kind,
                "challenge": challenge,
                "origin": self.origin,
                "crossOrigin": false,
            }))
            .expect("JSON")
        }

        /// `navigator.credentials.create({publicKey})`: `credential.toJSON()`, or an error
        /// when the options exclude a credential this authenticator holds.
        pub(crate) fn create(&mut self, options: &Value) -> Result<Value, String> {
            let options = &options["publicKey"];
            let excluded: Vec<Vec<u8>> = options["excludeCredentials"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["id"].as_str())
                .map(|id| B64.decode(id).expect("base64url"))
                .collect();
            if !self.allow_duplicates && self.credentials.iter().any(|c| excluded.contains(&c.id)) {
                return Err("InvalidStateError: excluded credential present".into());
            }
            let challenge = options["challenge"].as_str().ok_or("no challenge")?;
            let user_handle = B64
                .decode(options["user"]["id"].as_str().ok_or("no user id")?)
                .map_err(|e| e.to_string())?;
            let credential = match self.credentials.first() {
                // A copycat answers with the credential id it holds, new options or not.
                Some(held) if self.allow_duplicates => Credential {
                    user_handle,
                    ..held.clone()
                },
                _ => {
                    let mut id = vec![0u8; 32];
                    aws_lc_rs::rand::SecureRandom::fill(&SystemRandom::new(), &mut id)
                        .expect("random");
                    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
                    let credential = Credential {
                        id,
                        key: Arc::new(key),
                        user_handle,
                        counter: 0,
                    };
                    self.credentials.push(credential.clone());
                    credential
                }
            };
            let mut auth_data = digest(&SHA256, self.rp_id.as_bytes()).as_ref().to_vec();
            auth_data.push(self.flags(true));
            auth_data.extend(credential.counter.to_be_bytes());
            auth_data.extend([0u8; 16]);
            auth_data.extend((credential.id.len() as u16).to_be_bytes());
            auth_data.extend(&credential.id);
            auth_data.extend(cose_key(credential.key.public_key().as_ref()));
            let mut attestation = vec![0xa3];
            cbor_text("fmt", &mut attestation);
            cbor_text("none", &mut attestation);
            cbor_text("attStmt", &mut attestation);
            attestation.push(0xa0);
            cbor_text("authData", &mut attestation);
            cbor_bytes(&auth_data, &mut attestation);
            let client_data = self.client_data("webauthn.create", challenge);
            Ok(json!({
                "id": B64.encode(&credential.id),
                "rawId": B64.encode(&credential.id),
                "type": "public-key",
                "authenticatorAttachment": "platform",
                "response": {
                    "clientDataJSON": B64.encode(&client_data),
                    "attestationObject": B64.encode(&attestation),
                    "transports": ["internal"],
                },
                "clientExtensionResults": {},
            }))
        }

        /// `navigator.credentials.get({publicKey})`: `credential.toJSON()` of an assertion
        /// by the first credential the options allow (any, when they list none).
        pub(crate) fn get(&mut self, options: &Value) -> Result<Value, String> {
            let options = &options["publicKey"];
            let allowed: Vec<Vec<u8>> = options["allowCredentials"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["id"].as_str())
                .map(|id| B64.decode(id).expect("base64url"))
                .collect();
            let challenge = options["challenge"]
                .as_str()
                .ok_or("no challenge")?
                .to_owned();
            let flags = self.flags(false);
            let client_data = self.client_data("webauthn.get", &challenge);
            let rp_hash = digest(&SHA256, self.rp_id.as_bytes());
            let credential = self
                .credentials
                .iter_mut()
                .find(|c| allowed.is_empty() || allowed.contains(&c.id))
                .ok_or("NotAllowedError: no credential for these options")?;
            credential.counter += 1;
            let mut auth_data = rp_hash.as_ref().to_vec();
            auth_data.push(flags);
            auth_data.extend(credential.counter.to_be_bytes());
            let mut signed = auth_data.clone();
            signed.extend(digest(&SHA256, &client_data).as_ref());
            let signature = credential
                .key
                .sign(&SystemRandom::new(), &signed)
                .map_err(|_| "sign failed")?;
            Ok(json!({
                "id": B64.encode(&credential.id),
                "rawId": B64.encode(&credential.id),
                "type": "public-key",
                "authenticatorAttachment": "platform",
                "response": {
                    "clientDataJSON": B64.encode(&client_data),
                    "authenticatorData": B64.encode(&auth_data),
                    "signature": B64.encode(signature.as_ref()),
                    "userHandle": B64.encode(&credential.user_handle),
                },
                "clientExtensionResults": {},
            }))
        }
    }

    /// The user handle the API gives a user: the 16 bytes of their UUID.
    fn user_handle(user_id: &str) -> Vec<u8> {
        uuid::Uuid::parse_str(user_id)
            .expect("uuid")
            .as_bytes()
            .to_vec()
    }
}
