//! Sign-in with OpenID Connect providers against a real provider on loopback (panva's
//! `oidc-provider`, driven through its login and consent pages): providers configured by
//! admins, the code flow with PKCE, the same user every time, the linking rules, native
//! id_token sign-in, key rotation, ES256, userinfo, failures that leave nothing behind, SSRF
//! refusals, tenants, and secrets sealed at rest.

use serde_json::{Value, json};

use crate::support::{
    AuthPayload, Gql, OidcClient, OidcConfig, OidcProvider, PASSWORD, TestApp, spawn_app_with,
    spawn_on,
};

pub(crate) const CALLBACK: &str = "https://app.example.test/callback";

pub(crate) const UPSERT: &str = "mutation($input: ProviderInput!) { upsertProvider(input: $input) { \
    name kind displayName issuer clientId hasClientSecret scopes redirectUrls enabled } }";
pub(crate) const START: &str =
    "mutation($input: StartOAuthInput!) { startOAuth(input: $input) { authorizationUrl state } }";
pub(crate) const COMPLETE: &str = "mutation($input: CompleteOAuthInput!) { completeOAuth(input: $input) { \
    accessToken refreshToken tokenType expiresIn user { id roles emails { primary } } \
    session { id method } } }";
const ID_TOKEN: &str = "mutation($input: IdTokenInput!) { signInWithIdToken(input: $input) { \
    accessToken refreshToken tokenType expiresIn user { id roles emails { primary } } \
    session { id method } } }";

pub(crate) fn accounts() -> Value {
    json!({
        "alice": { "email": "alice@example.com", "email_verified": true, "name": "Alice" },
        "bob": { "email": "bob@example.com", "email_verified": false },
        "carol": { "email": "carol@example.com", "email_verified": true },
        "dave": { "email": "dave@example.com", "email_verified": true },
    })
}

pub(crate) async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.oauth_allow_loopback = true;
        c.oauth_jwks_refetch_seconds = 1;
    })
    .await
}

pub(crate) async fn provider(alg: &'static str) -> (OidcProvider, OidcClient) {
    let client = OidcClient::new("web", CALLBACK);
    let mut config = OidcConfig::new(vec![client.clone()], accounts());
    config.alg = alg;
    (OidcProvider::start(config).await, client)
}

pub(crate) fn input(name: &str, idp: &OidcProvider, client: &OidcClient) -> Value {
    json!({ "input": {
        "name": name, "kind": "OIDC", "issuer": idp.issuer, "clientId": client.id,
        "clientSecret": client.secret, "redirectUrls": [CALLBACK],
        "scopes": ["openid", "email", "profile"],
    }})
}

pub(crate) async fn configure(app: &TestApp, admin: &str, idp: &OidcProvider, client: &OidcClient) {
    let saved = app
        .gql(UPSERT, input("idp", idp, client), Some(admin))
        .await;
    let saved: Value = saved.data("upsertProvider");
    assert_eq!(saved["hasClientSecret"], true, "{saved}");
}

/// [`configure`] with the provider's default scopes.
pub(crate) async fn configure_with_scopes(
    app: &TestApp,
    admin: &str,
    idp: &OidcProvider,
    client: &OidcClient,
    scopes: &[&str],
) {
    let mut provider = input("idp", idp, client);
    provider["input"]["scopes"] = json!(scopes);
    let saved = app.gql(UPSERT, provider, Some(admin)).await;
    let saved: Value = saved.data("upsertProvider");
    assert_eq!(saved["scopes"], json!(scopes), "{saved}");
}

/// startOAuth, the provider's pages as `login`, completeOAuth.
pub(crate) async fn oauth_sign_in(
    app: &TestApp,
    idp: &OidcProvider,
    login: &str,
    upsert: bool,
) -> Gql {
    let start = app
        .gql(
            START,
            json!({"input": {"provider": "idp", "redirectUrl": CALLBACK}}),
            None,
        )
        .await;
    let start: Value = start.data("startOAuth");
    let back = idp
        .authorize(start["authorizationUrl"].as_str().unwrap(), login)
        .await;
    assert_eq!(
        back.get("state").map(String::as_str),
        start["state"].as_str()
    );
    app.gql(
        COMPLETE,
        json!({"input": {"provider": "idp", "code": back["code"], "state": back["state"],
            "redirectUrl": CALLBACK, "upsertConnection": upsert}}),
        None,
    )
    .await
}

pub(crate) async fn count(app: &TestApp, table: &str) -> i64 {
    let store = app.store().await;
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    let row: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .expect("count");
    row.0
}

#[tokio::test]
async fn the_code_flow_signs_in_the_same_user_every_time() {
    let app = app().await;
    let (idp, client) = provider("RS256").await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure(&app, &admin, &idp, &client).await;

    // The sign-in button, nothing secret.
    let info = app
        .gql(
            "{ tenantInfo { providers signInProviders { name kind displayName } } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(
        info.0["data"]["tenantInfo"]["signInProviders"],
        json!([{"name": "idp", "kind": "OIDC", "displayName": "OpenID Connect"}])
    );
    let start = app
        .gql(
            START,
            json!({"input": {"provider": "idp", "redirectUrl": CALLBACK}}),
            None,
        )
        .await;
    let start: Value = start.data("startOAuth");
    let url = reqwest::Url::parse(start["authorizationUrl"].as_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query.contains_key("nonce") && query.contains_key("code_challenge"));
    assert_eq!(query["redirect_uri"], CALLBACK);

    let first: AuthPayload = oauth_sign_in(&app, &idp, "alice", false)
        .await
        .data("completeOAuth");
    let again: AuthPayload = oauth_sign_in(&app, &idp, "alice", false)
        .await
        .data("completeOAuth");
    assert_eq!(
        first.user_id, again.user_id,
        "same provider subject, same user"
    );
    assert_ne!(first.session_id, again.session_id);
    let me = app
        .gql(
            "{ me { id emails { primary } } }",
            json!({}),
            Some(&first.access_token),
        )
        .await;
    assert_eq!(
        me.0["data"]["me"]["emails"]["primary"], "alice@example.com",
        "{}",
        me.0
    );
    let sessions = app
        .gql(
            "{ sessions { method } }",
            json!({}),
            Some(&again.access_token),
        )
        .await;
    assert_eq!(
        sessions.0["data"]["sessions"][0]["method"], "oauth",
        "{}",
        sessions.0
    );
    // Another provider account is another user.
    let other: AuthPayload = oauth_sign_in(&app, &idp, "dave", false)
        .await
        .data("completeOAuth");
    assert_ne!(other.user_id, first.user_id);
    assert_eq!(count(&app, "users").await, 2);

    // providers (admin) never returns the secret.
    let listed = app
        .gql(
            "{ providers { name clientId hasClientSecret } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert!(!listed.0.to_string().contains(&client.secret));
    assert_eq!(listed.0["data"]["providers"][0]["hasClientSecret"], true);
}

#[tokio::test]
async fn a_state_or_code_used_twice_or_elsewhere_is_refused_and_nothing_is_created() {
    let app = app().await;
    let (idp, client) = provider("RS256").await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure(&app, &admin, &idp, &client).await;
    let begin = || async {
        let start = app
            .gql(
                START,
                json!({"input": {"provider": "idp", "redirectUrl": CALLBACK}}),
                None,
            )
            .await;
        start.data::<Value>("startOAuth")
    };
    let complete = |code: String, state: String, redirect: &'static str| {
        let app = &app;
        async move {
            app.gql(
                COMPLETE,
                json!({"input": {"provider": "idp", "code": code, "state": state, "redirectUrl": redirect}}),
                None,
            )
            .await
        }
    };
    // A redirect URL not in the list: refused before anything is stored.
    let bad = app
        .gql(
            START,
            json!({"input": {"provider": "idp", "redirectUrl": "https://evil.test/cb"}}),
            None,
        )
        .await;
    assert_eq!(bad.code(), "BAD_USER_INPUT");
    assert_eq!(bad.error().extensions["field"], "input.redirectUrl");
    assert_eq!(count(&app, "oauth_states").await, 0);

    let a = begin().await;
    let back_a = idp
        .authorize(a["authorizationUrl"].as_str().unwrap(), "alice")
        .await;
    let b = begin().await;
    let back_b = idp
        .authorize(b["authorizationUrl"].as_str().unwrap(), "alice")
        .await;

    // A made-up state.
    let forged = complete(back_a["code"].clone(), "made-up".into(), CALLBACK).await;
    assert_eq!(forged.code(), "INVALID_CREDENTIALS", "{}", forged.0);
    // The right state with another redirect URL (allowed by the provider list? no: refused).
    let wrong_redirect = complete(
        back_b["code"].clone(),
        back_b["state"].clone(),
        "https://evil.test/cb",
    )
    .await;
    assert_eq!(wrong_redirect.code(), "BAD_USER_INPUT");
    // A's code with B's state: the PKCE verifier does not match, the provider refuses.
    let swapped = complete(back_a["code"].clone(), back_b["state"].clone(), CALLBACK).await;
    assert_eq!(swapped.code(), "INVALID_CREDENTIALS", "{}", swapped.0);
    assert_eq!(count(&app, "users").await, 0, "nothing created by failures");
    assert_eq!(count(&app, "sessions").await, 0);

    let ok: AuthPayload = complete(back_a["code"].clone(), back_a["state"].clone(), CALLBACK)
        .await
        .data("completeOAuth");
    // The state is spent.
    let replay = complete(back_a["code"].clone(), back_a["state"].clone(), CALLBACK).await;
    assert_eq!(replay.code(), "INVALID_CREDENTIALS");
    assert_eq!(count(&app, "sessions").await, 1);
    let _ = ok;
}

#[tokio::test]
async fn linking_follows_verified_addresses_only() {
    let app = app().await;
    let (idp, client) = provider("RS256").await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure(&app, &admin, &idp, &client).await;

    // Proven local address + provider-verified email: joins the account.
    let carol = app.sign_up("carol@example.com").await;
    app.prove_address("carol@example.com").await;
    let joined: AuthPayload = oauth_sign_in(&app, &idp, "carol", false)
        .await
        .data("completeOAuth");
    assert_eq!(joined.user_id, carol.user_id);

    // Unproven local address (a password sign-up alone): CONFLICT, account untouched.
    let alice = app.sign_up("alice@example.com").await;
    let sessions_before = count(&app, "sessions").await;
    let refused = oauth_sign_in(&app, &idp, "alice", true).await;
    assert_eq!(refused.code(), "CONFLICT", "{}", refused.0);
    assert!(refused.error().message.contains("sign in"), "{}", refused.0);
    assert_eq!(count(&app, "sessions").await, sessions_before, "no session");
    assert_eq!(count(&app, "connections").await, 0, "no connection");
    assert_eq!(count(&app, "user_identities").await, 1, "only carol's");
    let still: AuthPayload = app.signed_in("alice@example.com", PASSWORD).await;
    assert_eq!(still.user_id, alice.user_id, "password unchanged");

    // Provider says unverified, local address proven: never joins.
    let bob = app.sign_up("bob@example.com").await;
    app.prove_address("bob@example.com").await;
    let refused = oauth_sign_in(&app, &idp, "bob", false).await;
    assert_eq!(refused.code(), "CONFLICT", "{}", refused.0);
    let _ = bob;
    assert_eq!(count(&app, "users").await, 3, "no account was created");
}

#[tokio::test]
async fn id_tokens_from_a_native_app_sign_in_and_bad_ones_do_not() {
    let app = app().await;
    let web = OidcClient::new("web", CALLBACK);
    let mobile = OidcClient::new("mobile", "https://mobile.example.test/cb");
    let stranger = OidcClient::new("stranger", "https://other.example.test/cb");
    let idp = OidcProvider::start(OidcConfig::new(
        vec![web.clone(), mobile.clone(), stranger.clone()],
        accounts(),
    ))
    .await;
    let admin = app.machine_token("default", &["admin"]).await;
    let mut provider = input("idp", &idp, &web);
    provider["input"]["extraClientIds"] = json!(["mobile"]);
    let _: Value = app
        .gql(UPSERT, provider, Some(&admin))
        .await
        .data("upsertProvider");
    let sign_in = |token: String, nonce: &'static str| {
        let app = &app;
        async move {
            app.gql(
                ID_TOKEN,
                json!({"input": {"provider": "idp", "idToken": token, "nonce": nonce}}),
                None,
            )
            .await
        }
    };

    let tokens = idp.app_tokens(&mobile, "alice", "raw-nonce-1").await;
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let good: AuthPayload = sign_in(id_token.clone(), "raw-nonce-1")
        .await
        .data("signInWithIdToken");
    // The Apple / Firebase form: the token carries the SHA-256 hex of the app's nonce.
    let hashed: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"raw-nonce-2")
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tokens = idp.app_tokens(&mobile, "alice", &hashed).await;
    let again: AuthPayload = sign_in(
        tokens["id_token"].as_str().unwrap().to_owned(),
        "raw-nonce-2",
    )
    .await
    .data("signInWithIdToken");
    assert_eq!(good.user_id, again.user_id);

    // Wrong nonce.
    let wrong = sign_in(id_token.clone(), "another-nonce").await;
    assert_eq!(wrong.code(), "INVALID_CREDENTIALS");
    // Another client's token: aud not ours.
    let foreign = idp.app_tokens(&stranger, "dave", "n").await;
    let foreign = sign_in(foreign["id_token"].as_str().unwrap().to_owned(), "n").await;
    assert_eq!(foreign.code(), "INVALID_CREDENTIALS");
    // A changed signature, a changed payload, alg none.
    let parts: Vec<&str> = id_token.split('.').collect();
    let mut sig = parts[2].to_owned();
    let flipped = if sig.ends_with('A') { 'B' } else { 'A' };
    sig.pop();
    sig.push(flipped);
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], sig);
    assert_eq!(
        sign_in(bad_sig, "raw-nonce-1").await.code(),
        "INVALID_CREDENTIALS"
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("dave");
    let changed = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(
        sign_in(changed, "raw-nonce-1").await.code(),
        "INVALID_CREDENTIALS"
    );
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    assert_eq!(
        sign_in(none, "raw-nonce-1").await.code(),
        "INVALID_CREDENTIALS"
    );
    // Another issuer's claim in an otherwise well-formed token cannot be signed by the test.
    assert_eq!(count(&app, "users").await, 1);
}

#[tokio::test]
async fn new_keys_es256_and_id_tokens_without_email() {
    let app = app().await;
    let mut client = OidcClient::new("web", CALLBACK);
    client.id_token_email = false;
    let idp = OidcProvider::start(OidcConfig::new(vec![client.clone()], accounts())).await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure(&app, &admin, &idp, &client).await;
    // No email in the id_token: userinfo supplies it.
    let first: AuthPayload = oauth_sign_in(&app, &idp, "alice", false)
        .await
        .data("completeOAuth");
    let me = app
        .gql(
            "{ me { emails { primary } } }",
            json!({}),
            Some(&first.access_token),
        )
        .await;
    assert_eq!(
        me.0["data"]["me"]["emails"]["primary"], "alice@example.com",
        "{}",
        me.0
    );

    // Restarted with a new ES256 key: the unknown kid makes one JWKS refetch.
    let idp = idp.restart("ES256").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after: AuthPayload = oauth_sign_in(&app, &idp, "alice", false)
        .await
        .data("completeOAuth");
    assert_eq!(after.user_id, first.user_id);
}

#[tokio::test]
async fn a_provider_that_is_down_fails_clearly_and_creates_nothing() {
    let app = app().await;
    let (mut idp, client) = provider("RS256").await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure(&app, &admin, &idp, &client).await;
    let start = app
        .gql(
            START,
            json!({"input": {"provider": "idp", "redirectUrl": CALLBACK}}),
            None,
        )
        .await;
    let start: Value = start.data("startOAuth");
    let back = idp
        .authorize(start["authorizationUrl"].as_str().unwrap(), "alice")
        .await;
    idp.stop().await;
    let (status, answer) = app
        .gql_raw(
            COMPLETE,
            json!({"input": {"provider": "idp", "code": back["code"], "state": back["state"], "redirectUrl": CALLBACK}}),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer.code(), "INTERNAL", "{}", answer.0);
    assert!(answer.error().message.contains("provider"), "{}", answer.0);
    assert_eq!(count(&app, "users").await, 0);
    assert_eq!(count(&app, "sessions").await, 0);
}

#[tokio::test]
async fn provider_urls_must_be_public_https_at_configuration_and_at_connect_time() {
    let strict = spawn_app_with(|_| {}).await;
    let admin = strict.machine_token("default", &["admin"]).await;
    for (field, issuer) in [
        ("input.issuer", "http://accounts.example.com"),
        ("input.issuer", "https://127.0.0.1"),
        ("input.issuer", "https://localhost:8443"),
        ("input.issuer", "https://169.254.169.254/latest"),
        ("input.issuer", "https://[::1]/"),
        ("input.issuer", "https://10.0.0.1/"),
    ] {
        let answer = strict
            .gql(
                UPSERT,
                json!({"input": {"name": "x", "kind": "OIDC", "issuer": issuer, "clientId": "c",
                    "redirectUrls": [CALLBACK]}}),
                Some(&admin),
            )
            .await;
        assert_eq!(answer.code(), "BAD_USER_INPUT", "{issuer}: {}", answer.0);
        assert_eq!(answer.error().extensions["field"], field, "{issuer}");
    }
    let plain = strict
        .gql(
            UPSERT,
            json!({"input": {"name": "x", "kind": "OAUTH2", "clientId": "c",
                "authorizationUrl": "https://93.184.215.14/auth", "tokenUrl": "https://127.0.0.1/token",
                "userinfoUrl": "https://93.184.215.14/me", "redirectUrls": [CALLBACK]}}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        plain.error().extensions["field"],
        "input.tokenUrl",
        "{}",
        plain.0
    );
    assert_eq!(count(&strict, "oauth_providers").await, 0);
    let db = strict.stop().await;

    // A name that resolves to loopback, written where configuration was allowed: refused
    // when connecting.
    let loose = spawn_on(db, |c| c.oauth_allow_loopback = true).await;
    let (idp, client) = provider("RS256").await;
    let admin = loose.machine_token("default", &["admin"]).await;
    configure(&loose, &admin, &idp, &client).await;
    let port = idp.issuer.rsplit(':').next().unwrap().to_owned();
    let store = loose.store().await;
    sqlx::query("UPDATE oauth_providers SET issuer = $1")
        .bind(format!("https://localhost:{port}"))
        .execute(store.pool())
        .await
        .unwrap();
    let db = loose.stop().await;
    let strict = spawn_on(db, |_| {}).await;
    let answer = strict
        .gql(
            START,
            json!({"input": {"provider": "idp", "redirectUrl": CALLBACK}}),
            None,
        )
        .await;
    assert_eq!(answer.code(), "INTERNAL", "{}", answer.0);
    assert!(answer.error().message.contains("provider"), "{}", answer.0);
    assert_eq!(count(&strict, "oauth_states").await, 0);
}

#[tokio::test]
async fn providers_are_per_tenant_and_for_admins() {
    let app = app().await;
    let (idp, client) = provider("RS256").await;
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "acme").await;
    let acme_admin = app.machine_token("acme", &["admin"]).await;
    let (_, saved) = app
        .gql_raw(
            UPSERT,
            input("idp", &idp, &client),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    let _: Value = saved.data("upsertProvider");
    // The default tenant has no such provider.
    let other = app
        .gql(
            START,
            json!({"input": {"provider": "idp", "redirectUrl": CALLBACK}}),
            None,
        )
        .await;
    assert_eq!(other.code(), "NOT_FOUND");
    // Users and non-admin tokens may not configure providers.
    let user = app.sign_up("eve@example.com").await;
    for bearer in [
        user.access_token.clone(),
        app.machine_token("default", &["connections"]).await,
    ] {
        let answer = app
            .gql(UPSERT, input("idp", &idp, &client), Some(&bearer))
            .await;
        assert_eq!(answer.code(), "FORBIDDEN");
        let answer = app
            .gql("{ providers { name } }", json!({}), Some(&bearer))
            .await;
        assert_eq!(answer.code(), "FORBIDDEN");
    }
    // acme's admin token is refused in the default tenant.
    let answer = app
        .gql("{ providers { name } }", json!({}), Some(&acme_admin))
        .await;
    assert_eq!(answer.code(), "FORBIDDEN");
    // Deleting: gone from tenantInfo, and again is NOT_FOUND.
    let (_, deleted) = app
        .gql_raw(
            "mutation { deleteProvider(name: \"idp\") }",
            json!({}),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    assert_eq!(deleted.0["data"]["deleteProvider"], true, "{}", deleted.0);
    let (_, again) = app
        .gql_raw(
            "mutation { deleteProvider(name: \"idp\") }",
            json!({}),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    assert_eq!(again.code(), "NOT_FOUND");
}

#[tokio::test]
async fn client_secrets_and_provider_tokens_are_sealed_at_rest() {
    let app = app().await;
    let (idp, client) = provider("RS256").await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure(&app, &admin, &idp, &client).await;
    let signed: AuthPayload = oauth_sign_in(&app, &idp, "alice", true)
        .await
        .data("completeOAuth");
    let connections = app
        .gql(
            "{ connections { provider subject email hasRefreshToken } }",
            json!({}),
            Some(&signed.access_token),
        )
        .await;
    assert_eq!(
        connections.0["data"]["connections"][0]["subject"], "alice",
        "{}",
        connections.0
    );
    // The stored access token, opened with the master key, works at the provider...
    let store = app.store().await;
    let (id, sealed): (String, String) = sqlx::query_as("SELECT id, access_token FROM connections")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let key = auth_api::crypto::MasterKey::parse(&crate::support::master_key_of_tests()).unwrap();
    let access = String::from_utf8(
        key.open(&format!("connections:{id}:access"), &sealed)
            .unwrap(),
    )
    .unwrap();
    let (status, info) = idp.userinfo(&access).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sub"], "alice");
    // ...and neither it nor the client secret is in the database file (SQLite's; PostgreSQL
    // stores what the same sealing code wrote).
    drop(store);
    if app.db.is_postgres() {
        return;
    }
    let path = app.config.sqlite_path().expect("a SQLite file");
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{}-wal", path.display())) {
        bytes.extend(wal);
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(&client.secret), "client secret in the file");
    assert!(!contains(&access), "provider access token in the file");
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in_with_a_provider_nor_gain_one() {
    let app = app().await;
    let (idp, client) = provider("RS256").await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure(&app, &admin, &idp, &client).await;
    let alice: AuthPayload = oauth_sign_in(&app, &idp, "alice", false)
        .await
        .data("completeOAuth");
    // Carol's proven address would let a provider-verified email join her account.
    let carol = app.sign_up("carol@example.com").await;
    app.prove_address("carol@example.com").await;
    for id in [&alice.user_id, &carol.user_id] {
        let done = app
            .gql(
                "mutation($id: ID!) { adminUpdateUser(id: $id, input: {disabled: true}) { disabled } }",
                json!({"id": id}),
                Some(&admin),
            )
            .await;
        assert_eq!(done.data::<Value>("adminUpdateUser")["disabled"], true);
    }
    let sessions = count(&app, "sessions").await;
    let refused = oauth_sign_in(&app, &idp, "alice", true).await;
    assert_eq!(refused.code(), "FORBIDDEN", "{}", refused.0);
    assert!(
        refused.error().message.contains("disabled"),
        "{}",
        refused.0
    );
    let refused = oauth_sign_in(&app, &idp, "carol", false).await;
    assert_eq!(refused.code(), "FORBIDDEN", "{}", refused.0);
    // A native app's id_token: refused too.
    let tokens = idp.app_tokens(&client, "alice", "nonce-d").await;
    let refused = app
        .gql(
            ID_TOKEN,
            json!({"input": {"provider": "idp", "idToken": tokens["id_token"], "nonce": "nonce-d"}}),
            None,
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN", "{}", refused.0);
    assert_eq!(count(&app, "sessions").await, sessions, "no session");
    assert_eq!(count(&app, "connections").await, 0, "no connection");
    assert_eq!(
        count(&app, "user_identities").await,
        1,
        "carol's account gained no provider identity"
    );
}

#[tokio::test]
async fn an_id_token_is_accepted_once_and_an_expired_one_never() {
    let app = app().await;
    let (idp, client) = provider("ES256").await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure(&app, &admin, &idp, &client).await;
    let sign_in = |token: Value, nonce: &'static str| {
        let app = &app;
        async move {
            app.gql(
                ID_TOKEN,
                json!({"input": {"provider": "idp", "idToken": token, "nonce": nonce}}),
                None,
            )
            .await
        }
    };
    let tokens = idp.app_tokens(&client, "alice", "once").await;
    let first: AuthPayload = sign_in(tokens["id_token"].clone(), "once")
        .await
        .data("signInWithIdToken");
    // The same token again (a stolen one replayed), here or through another replica.
    let replay = sign_in(tokens["id_token"].clone(), "once").await;
    assert_eq!(replay.code(), "INVALID_CREDENTIALS", "{}", replay.0);
    assert!(replay.error().message.contains("used"), "{}", replay.0);
    let other = spawn_on(app.db.share(), |c| c.oauth_allow_loopback = true).await;
    let replay = other
        .gql(
            ID_TOKEN,
            json!({"input": {"provider": "idp", "idToken": tokens["id_token"], "nonce": "once"}}),
            None,
        )
        .await;
    assert_eq!(replay.code(), "INVALID_CREDENTIALS", "{}", replay.0);
    assert_eq!(
        count(&app, "sessions").await,
        1,
        "one session from one token"
    );
    // A new token for the same person is fine.
    let tokens = idp.app_tokens(&client, "alice", "twice").await;
    let again: AuthPayload = sign_in(tokens["id_token"].clone(), "twice")
        .await
        .data("signInWithIdToken");
    assert_eq!(again.user_id, first.user_id);

    // A provider whose id_tokens are expired (by more than the 60 s leeway) when issued.
    let mut config = OidcConfig::new(vec![client.clone()], accounts());
    config.id_token_ttl = Some(-300);
    let stale = OidcProvider::start(config).await;
    let fresh_app = self::app().await;
    let admin = fresh_app.machine_token("default", &["admin"]).await;
    configure(&fresh_app, &admin, &stale, &client).await;
    let tokens = stale.app_tokens(&client, "dave", "late").await;
    let exp = {
        use base64::Engine;
        let payload = tokens["id_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["exp"].as_i64().unwrap()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        exp < now - 60,
        "expired beyond the leeway: exp {exp}, now {now}"
    );
    let expired = fresh_app
        .gql(
            ID_TOKEN,
            json!({"input": {"provider": "idp", "idToken": tokens["id_token"], "nonce": "late"}}),
            None,
        )
        .await;
    assert_eq!(expired.code(), "INVALID_CREDENTIALS", "{}", expired.0);
    // The code flow refuses it as well.
    let refused = oauth_sign_in(&fresh_app, &stale, "dave", true).await;
    assert_eq!(refused.code(), "INVALID_CREDENTIALS", "{}", refused.0);
    assert_eq!(count(&fresh_app, "users").await, 0);
    assert_eq!(count(&fresh_app, "sessions").await, 0);
    assert_eq!(count(&fresh_app, "connections").await, 0);
}

#[tokio::test]
async fn housekeeping_forgets_expired_sign_in_states_and_spent_id_tokens() {
    let app = app().await;
    let (idp, client) = provider("RS256").await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure(&app, &admin, &idp, &client).await;
    let tokens = idp.app_tokens(&client, "alice", "n").await;
    let _: AuthPayload = app
        .gql(
            ID_TOKEN,
            json!({"input": {"provider": "idp", "idToken": tokens["id_token"], "nonce": "n"}}),
            None,
        )
        .await
        .data("signInWithIdToken");
    for _ in 0..2 {
        let _: Value = app
            .gql(
                START,
                json!({"input": {"provider": "idp", "redirectUrl": CALLBACK}}),
                None,
            )
            .await
            .data("startOAuth");
    }
    assert_eq!(count(&app, "oauth_states").await, 2);
    assert_eq!(count(&app, "used_id_tokens").await, 1);
    // One state and the spent token past their time; the next housekeeping round (one runs
    // when the app starts) forgets exactly those.
    let store = app.store().await;
    sqlx::query(
        "UPDATE oauth_states SET expires_at = 1 WHERE id = (SELECT MIN(id) FROM oauth_states)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE used_id_tokens SET expires_at = 1")
        .execute(store.pool())
        .await
        .unwrap();
    drop(store);
    let db = app.stop().await;
    let app = spawn_on(db, |c| c.oauth_allow_loopback = true).await;
    let started = std::time::Instant::now();
    while count(&app, "used_id_tokens").await > 0 || count(&app, "oauth_states").await > 1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "not purged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(count(&app, "oauth_states").await, 1, "the live state stays");
}

#[tokio::test]
async fn an_apple_provider_needs_its_team_key_id_and_private_key_which_is_never_returned() {
    let app = app().await;
    let admin = app.machine_token("default", &["admin"]).await;
    let pem = {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        use base64::Engine;
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        )
    };
    let apple = |extra: Value| {
        let mut input = json!({"name": "apple", "kind": "APPLE", "clientId": "com.example.web",
            "redirectUrls": [CALLBACK]});
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        json!({ "input": input })
    };
    let upsert = "mutation($input: ProviderInput!) { upsertProvider(input: $input) { \
        name issuer teamId keyId hasClientSecret scopes } }";
    for (extra, field) in [
        (
            json!({"keyId": "KEY1234567", "clientSecret": pem}),
            "input.teamId",
        ),
        (
            json!({"teamId": "TEAM123456", "clientSecret": pem}),
            "input.keyId",
        ),
        (
            json!({"teamId": "TEAM123456", "keyId": "KEY1234567"}),
            "input.clientSecret",
        ),
        (
            json!({"teamId": "TEAM123456", "keyId": "KEY1234567", "clientSecret": "a plain secret"}),
            "input.clientSecret",
        ),
    ] {
        let refused = app.gql(upsert, apple(extra), Some(&admin)).await;
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{}", refused.0);
        assert_eq!(refused.error().extensions["field"], field, "{}", refused.0);
    }
    assert_eq!(count(&app, "oauth_providers").await, 0);
    let saved = app
        .gql(
            upsert,
            apple(json!({"teamId": "TEAM123456", "keyId": "KEY1234567", "clientSecret": pem})),
            Some(&admin),
        )
        .await;
    let saved: Value = saved.data("upsertProvider");
    assert_eq!(saved["issuer"], "https://appleid.apple.com");
    assert_eq!(saved["teamId"], "TEAM123456");
    assert_eq!(saved["keyId"], "KEY1234567");
    assert_eq!(saved["hasClientSecret"], true);
    assert_eq!(saved["scopes"], json!(["openid", "email", "name"]));
    let listed = app
        .gql(
            "{ providers { name teamId keyId } }",
            json!({}),
            Some(&admin),
        )
        .await;
    let body = listed.0.to_string();
    assert!(!body.contains("PRIVATE KEY"), "{body}");
    // Changed without the key again: the stored key stays.
    let again = app
        .gql(
            upsert,
            apple(json!({"displayName": "Sign in with Apple"})),
            Some(&admin),
        )
        .await;
    assert_eq!(
        again.data::<Value>("upsertProvider")["hasClientSecret"],
        true
    );
}
