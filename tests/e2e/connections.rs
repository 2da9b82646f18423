//! Connections against the real OpenID provider (panva's `oidc-provider` on loopback): the
//! provider tokens a backend gets with a machine token (working at the provider's userinfo,
//! refreshed first when expired, once across two replicas), `refreshConnection` (new token
//! works, old one refused), `unlinkConnection` (revoked at the provider, gone),
//! `linkConnection` (and `CONFLICT` for another user's provider account), and account
//! deletion revoking the tokens at the provider.

use serde_json::{Value, json};

use crate::oauth::{CALLBACK, START, accounts, app, configure_with_scopes, count, oauth_sign_in};
use crate::support::{AuthPayload, Gql, OidcClient, OidcConfig, OidcProvider, TestApp, spawn_on};

const TOKENS: &str = "query($user: ID!, $provider: String!) { \
    connectionTokens(userId: $user, provider: $provider) { \
    accessToken refreshToken expiresAt scopes } }";
const CONNECTIONS: &str = "{ connections { provider subject email scopes expiresAt hasRefreshToken createdAt updatedAt } }";
const LINK: &str = "mutation($input: CompleteOAuthInput!) { linkConnection(input: $input) { \
    provider subject email scopes expiresAt hasRefreshToken } }";

/// An app and a provider whose access tokens live `access_ttl` seconds; the provider is
/// configured as `idp` with `offline_access` (refresh tokens).
async fn setup(access_ttl: u64) -> (TestApp, OidcProvider, OidcClient) {
    let app = app().await;
    let client = OidcClient::new("web", CALLBACK);
    let mut config = OidcConfig::new(vec![client.clone()], accounts());
    config.access_ttl = access_ttl;
    let idp = OidcProvider::start(config).await;
    let admin = app.machine_token("default", &["admin"]).await;
    configure_with_scopes(
        &app,
        &admin,
        &idp,
        &client,
        &["openid", "email", "profile", "offline_access"],
    )
    .await;
    (app, idp, client)
}

async fn tokens(app: &TestApp, bearer: &str, user_id: &str) -> Gql {
    app.gql(
        TOKENS,
        json!({"user": user_id, "provider": "idp"}),
        Some(bearer),
    )
    .await
}

/// The provider's answer to a refresh grant with `refresh_token` (its status).
async fn refresh_grant(idp: &OidcProvider, client: &OidcClient, refresh_token: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/token", idp.issuer))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .expect("token endpoint")
        .status()
        .as_u16()
}

/// The access token stored for the only connection, opened with the master key.
async fn stored_access_token(app: &TestApp) -> String {
    let store = app.store().await;
    let (id, sealed): (String, String) = sqlx::query_as("SELECT id, access_token FROM connections")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let key = auth_api::crypto::MasterKey::parse(&crate::support::master_key_of_tests()).unwrap();
    String::from_utf8(
        key.open(&format!("connections:{id}:access"), &sealed)
            .unwrap(),
    )
    .unwrap()
}

/// The audit events with `action`: (actor, user, detail).
async fn events(app: &TestApp, action: &str) -> Vec<(String, String, Value)> {
    let store = app.store().await;
    let rows: Vec<(Option<String>, Option<String>, String)> = sqlx::query_as(
        "SELECT actor, user_id, detail FROM audit_events WHERE action = $1 ORDER BY at",
    )
    .bind(action)
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(actor, user, detail)| {
            (
                actor.unwrap_or_default(),
                user.unwrap_or_default(),
                serde_json::from_str(&detail).unwrap(),
            )
        })
        .collect()
}

fn rfc3339(value: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        value.as_str().expect("a DateTime"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339")
}

/// startOAuth and the provider's pages as `login`: the `code` and `state` that come back.
async fn authorize(app: &TestApp, idp: &OidcProvider, login: &str) -> (String, String) {
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
    (back["code"].clone(), back["state"].clone())
}

async fn link(app: &TestApp, bearer: &str, code: &str, state: &str) -> Gql {
    app.gql(
        LINK,
        json!({"input": {"provider": "idp", "code": code, "state": state, "redirectUrl": CALLBACK}}),
        Some(bearer),
    )
    .await
}

#[tokio::test]
async fn connection_tokens_work_at_the_provider_and_are_for_backends_only() {
    let (app, idp, _client) = setup(3600).await;
    let alice: AuthPayload = oauth_sign_in(&app, &idp, "alice", true)
        .await
        .data("completeOAuth");
    let listed = app
        .gql(CONNECTIONS, json!({}), Some(&alice.access_token))
        .await;
    let listed: Vec<Value> = listed.data("connections");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["hasRefreshToken"], true, "{listed:?}");

    let backend = app.create_machine_token("default", &["connections"]).await;
    let got: Value = tokens(&app, &backend.secret, &alice.user_id)
        .await
        .data("connectionTokens");
    let access = got["accessToken"].as_str().unwrap().to_owned();
    let (status, info) = idp.userinfo(&access).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sub"], "alice");
    assert!(got["refreshToken"].as_str().is_some_and(|t| !t.is_empty()));
    let scopes: Vec<String> = serde_json::from_value(got["scopes"].clone()).unwrap();
    assert!(scopes.iter().any(|s| s == "offline_access"), "{scopes:?}");
    let expires = rfc3339(&got["expiresAt"]);
    assert!(expires > time::OffsetDateTime::now_utc() + time::Duration::minutes(50));
    // Fresh: handed out as stored, not refreshed.
    let again: Value = tokens(&app, &backend.secret, &alice.user_id)
        .await
        .data("connectionTokens");
    assert_eq!(again["accessToken"], got["accessToken"]);
    let issued = events(&app, "connection.tokens_issued").await;
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[0].0, format!("token:{}", backend.id));
    assert_eq!(issued[0].1, alice.user_id);
    assert_eq!(issued[0].2["provider"], "idp");
    assert!(events(&app, "connection.refreshed").await.is_empty());
    // The sign-in through the provider names it.
    let signed_up = events(&app, "user.sign_up").await;
    assert_eq!(
        signed_up[0].2,
        json!({"method": "oauth", "provider": "idp"})
    );

    // The user's own token, an admin token, an admin with every other scope: FORBIDDEN.
    let admin = app.machine_token("default", &["admin", "verify"]).await;
    for bearer in [&alice.access_token, &admin] {
        let refused = tokens(&app, bearer, &alice.user_id).await;
        assert_eq!(refused.code(), "FORBIDDEN", "{}", refused.0);
        assert!(!refused.0.to_string().contains(&access));
    }
    let anonymous = tokens(&app, "", &alice.user_id).await;
    assert_ne!(anonymous.0["errors"], Value::Null);
    assert!(anonymous.0["data"]["connectionTokens"].is_null());
    // Another tenant's backend sees nothing here.
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "acme").await;
    let foreign = app.machine_token("acme", &["connections"]).await;
    assert_eq!(
        tokens(&app, &foreign, &alice.user_id).await.code(),
        "FORBIDDEN"
    );
    // Unknown user, unknown provider: NOT_FOUND.
    assert_eq!(
        tokens(&app, &backend.secret, "no-such-user").await.code(),
        "NOT_FOUND"
    );
    let unknown = app
        .gql(
            TOKENS,
            json!({"user": alice.user_id, "provider": "nope"}),
            Some(&backend.secret),
        )
        .await;
    assert_eq!(unknown.code(), "NOT_FOUND");
    // A disabled account's tokens are not handed out; enabled again, they are.
    let admin_only = app.machine_token("default", &["admin"]).await;
    let disable = |on: bool| {
        let app = &app;
        let admin_only = &admin_only;
        let id = alice.user_id.clone();
        async move {
            app.gql(
                "mutation($id: ID!, $on: Boolean!) { adminUpdateUser(id: $id, input: {disabled: $on}) { disabled } }",
                json!({"id": id, "on": on}),
                Some(admin_only),
            )
            .await
            .data::<Value>("adminUpdateUser")
        }
    };
    disable(true).await;
    let refused = tokens(&app, &backend.secret, &alice.user_id).await;
    assert_eq!(refused.code(), "FORBIDDEN", "{}", refused.0);
    assert!(!refused.0.to_string().contains(&access));
    disable(false).await;
    let _: Value = tokens(&app, &backend.secret, &alice.user_id)
        .await
        .data("connectionTokens");
    // No user-facing answer carries a provider token.
    let listed = app
        .gql(CONNECTIONS, json!({}), Some(&alice.access_token))
        .await;
    assert!(!listed.0.to_string().contains(&access));
    assert!(
        !listed
            .0
            .to_string()
            .contains(got["refreshToken"].as_str().unwrap())
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_first_and_once_across_replicas() {
    let (app, idp, _client) = setup(2).await;
    let alice: AuthPayload = oauth_sign_in(&app, &idp, "alice", true)
        .await
        .data("completeOAuth");
    let backend = app.machine_token("default", &["connections"]).await;
    let old = stored_access_token(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, _) = idp.userinfo(&old).await;
    assert_eq!(status, 401, "the provider has let the old token expire");

    let got: Value = tokens(&app, &backend, &alice.user_id)
        .await
        .data("connectionTokens");
    let fresh = got["accessToken"].as_str().unwrap().to_owned();
    assert_ne!(fresh, old);
    let (status, info) = idp.userinfo(&fresh).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sub"], "alice");
    assert!(rfc3339(&got["expiresAt"]) > time::OffsetDateTime::now_utc());
    assert_eq!(
        stored_access_token(&app).await,
        fresh,
        "the new token is stored"
    );

    // Expired again; six backends ask at once, through two replicas on one database: one
    // refresh, and everyone gets its token.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let other = spawn_on(app.db.share(), |c| c.oauth_allow_loopback = true).await;
    let asks = (0..6).map(|i| {
        let replica: &TestApp = if i % 2 == 0 { &app } else { &other };
        let backend = backend.clone();
        let user = alice.user_id.clone();
        async move { tokens(replica, &backend, &user).await }
    });
    let answers = futures_util::future::join_all(asks).await;
    let mut seen = std::collections::HashSet::new();
    for answer in &answers {
        let got: Value = answer.data("connectionTokens");
        seen.insert(got["accessToken"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 1, "one refresh for all: {seen:?}");
    let shared = seen.into_iter().next().unwrap();
    assert_ne!(shared, fresh);
    let (status, _) = idp.userinfo(&shared).await;
    assert_eq!(status, 200);
    let refreshed = events(&app, "connection.refreshed").await;
    assert_eq!(refreshed.len(), 2, "{refreshed:?}");
    assert_eq!(refreshed[0].2["reason"], "expired");
}

#[tokio::test]
async fn refresh_connection_replaces_the_access_token_and_revokes_only_the_old_one() {
    let (app, idp, client) = setup(3600).await;
    let alice: AuthPayload = oauth_sign_in(&app, &idp, "alice", true)
        .await
        .data("completeOAuth");
    let backend = app.machine_token("default", &["connections"]).await;
    let before: Value = tokens(&app, &backend, &alice.user_id)
        .await
        .data("connectionTokens");
    let old = before["accessToken"].as_str().unwrap().to_owned();

    let answer = app
        .gql(
            "mutation { refreshConnection(provider: \"idp\") { provider subject email scopes \
             expiresAt hasRefreshToken updatedAt } }",
            json!({}),
            Some(&alice.access_token),
        )
        .await;
    let refreshed: Value = answer.data("refreshConnection");
    assert_eq!(refreshed["subject"], "alice");
    assert_eq!(refreshed["hasRefreshToken"], true);

    let after: Value = tokens(&app, &backend, &alice.user_id)
        .await
        .data("connectionTokens");
    let new = after["accessToken"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(
        !answer.0.to_string().contains(&new) && !answer.0.to_string().contains(&old),
        "no token in the answer"
    );
    let (status, info) = idp.userinfo(&new).await;
    assert_eq!(status, 200, "the new token works: {info}");
    let (status, _) = idp.userinfo(&old).await;
    assert_eq!(status, 401, "the old token is revoked");
    // Only the access token: the grant lives on, the refresh token still works.
    assert_eq!(
        refresh_grant(&idp, &client, after["refreshToken"].as_str().unwrap()).await,
        200
    );
    let audited = events(&app, "connection.refreshed").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].0, format!("user:{}", alice.user_id));
    assert_eq!(audited[0].2["reason"], "replace");

    // A machine token is not a user; a user without the connection gets NOT_FOUND.
    let as_backend = app
        .gql(
            "mutation { refreshConnection(provider: \"idp\") { provider } }",
            json!({}),
            Some(&backend),
        )
        .await;
    assert_eq!(as_backend.code(), "FORBIDDEN");
    let eve = app.sign_up("eve@example.com").await;
    let none = app
        .gql(
            "mutation { refreshConnection(provider: \"idp\") { provider } }",
            json!({}),
            Some(&eve.access_token),
        )
        .await;
    assert_eq!(none.code(), "NOT_FOUND");
}

#[tokio::test]
async fn unlink_revokes_at_the_provider_and_removes_the_connection() {
    let (app, idp, client) = setup(3600).await;
    let alice: AuthPayload = oauth_sign_in(&app, &idp, "alice", true)
        .await
        .data("completeOAuth");
    let backend = app.machine_token("default", &["connections"]).await;
    let held: Value = tokens(&app, &backend, &alice.user_id)
        .await
        .data("connectionTokens");
    let access = held["accessToken"].as_str().unwrap();
    let refresh = held["refreshToken"].as_str().unwrap();

    let unlink = "mutation { unlinkConnection(provider: \"idp\") }";
    let done = app.gql(unlink, json!({}), Some(&alice.access_token)).await;
    assert_eq!(done.0["data"]["unlinkConnection"], true, "{}", done.0);
    let (status, _) = idp.userinfo(access).await;
    assert_eq!(status, 401, "the access token is revoked at the provider");
    assert_eq!(
        refresh_grant(&idp, &client, refresh).await,
        400,
        "the refresh token (and its grant) is revoked"
    );
    let listed: Vec<Value> = app
        .gql(CONNECTIONS, json!({}), Some(&alice.access_token))
        .await
        .data("connections");
    assert!(listed.is_empty());
    assert_eq!(count(&app, "connections").await, 0);
    assert_eq!(
        tokens(&app, &backend, &alice.user_id).await.code(),
        "NOT_FOUND"
    );
    assert_eq!(
        app.gql(unlink, json!({}), Some(&alice.access_token))
            .await
            .code(),
        "NOT_FOUND"
    );
    let audited = events(&app, "connection.unlinked").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].2["revoked"], true);
    // Alice still signs in with the provider (the identity stays; the connection is gone).
    let again: AuthPayload = oauth_sign_in(&app, &idp, "alice", false)
        .await
        .data("completeOAuth");
    assert_eq!(again.user_id, alice.user_id);
}

#[tokio::test]
async fn link_connection_attaches_a_provider_account_to_the_signed_in_user_only_once() {
    let (app, idp, _client) = setup(3600).await;
    let eve = app.sign_up("eve@example.com").await;
    let (code, state) = authorize(&app, &idp, "dave").await;
    // Not signed in, or a machine token: refused, and the state is not spent by it.
    let backend = app
        .machine_token("default", &["connections", "admin"])
        .await;
    let refused = link(&app, &backend, &code, &state).await;
    assert_eq!(refused.code(), "FORBIDDEN", "{}", refused.0);
    let linked: Value = link(&app, &eve.access_token, &code, &state)
        .await
        .data("linkConnection");
    assert_eq!(linked["provider"], "idp");
    assert_eq!(linked["subject"], "dave");
    assert_eq!(linked["hasRefreshToken"], true);
    let listed: Vec<Value> = app
        .gql(CONNECTIONS, json!({}), Some(&eve.access_token))
        .await
        .data("connections");
    assert_eq!(listed.len(), 1);
    let got: Value = tokens(&app, &backend, &eve.user_id)
        .await
        .data("connectionTokens");
    let (status, info) = idp.userinfo(got["accessToken"].as_str().unwrap()).await;
    assert_eq!((status, info["sub"].clone()), (200, json!("dave")));
    // Linked, the provider account signs in to eve's account.
    let signed: AuthPayload = oauth_sign_in(&app, &idp, "dave", false)
        .await
        .data("completeOAuth");
    assert_eq!(signed.user_id, eve.user_id);
    let audited = events(&app, "connection.linked").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].1, eve.user_id);
    assert_eq!(audited[0].2["provider"], "idp");

    // Linking it again to eve replaces the tokens; to another user: CONFLICT.
    let (code, state) = authorize(&app, &idp, "dave").await;
    let _: Value = link(&app, &eve.access_token, &code, &state)
        .await
        .data("linkConnection");
    let mallory = app.sign_up("mallory@example.com").await;
    let (code, state) = authorize(&app, &idp, "dave").await;
    let conflict = link(&app, &mallory.access_token, &code, &state).await;
    assert_eq!(conflict.code(), "CONFLICT", "{}", conflict.0);
    // A provider account that signs in to another user (no connection there): CONFLICT.
    let _: AuthPayload = oauth_sign_in(&app, &idp, "alice", false)
        .await
        .data("completeOAuth");
    let (code, state) = authorize(&app, &idp, "alice").await;
    let conflict = link(&app, &mallory.access_token, &code, &state).await;
    assert_eq!(conflict.code(), "CONFLICT", "{}", conflict.0);
    let listed: Vec<Value> = app
        .gql(CONNECTIONS, json!({}), Some(&mallory.access_token))
        .await
        .data("connections");
    assert!(listed.is_empty(), "nothing half written: {listed:?}");
    assert_eq!(count(&app, "connections").await, 1);
    // A spent state does not link twice.
    let replay = link(&app, &mallory.access_token, &code, &state).await;
    assert_eq!(replay.code(), "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn deleting_an_account_revokes_its_provider_tokens_and_a_provider_down_does_not_block_it() {
    let (app, mut idp, client) = setup(3600).await;
    let backend = app.machine_token("default", &["connections"]).await;
    let admin = app.machine_token("default", &["admin"]).await;
    let mut held = Vec::new();
    for login in ["alice", "dave", "carol"] {
        let user: AuthPayload = oauth_sign_in(&app, &idp, login, true)
            .await
            .data("completeOAuth");
        let got: Value = tokens(&app, &backend, &user.user_id)
            .await
            .data("connectionTokens");
        held.push((user, got));
    }
    // deleteAccount.
    let (alice, alice_tokens) = &held[0];
    let deleted = app
        .gql(
            "mutation { deleteAccount }",
            json!({}),
            Some(&alice.access_token),
        )
        .await;
    assert_eq!(deleted.0["data"]["deleteAccount"], true, "{}", deleted.0);
    let (status, _) = idp
        .userinfo(alice_tokens["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        refresh_grant(
            &idp,
            &client,
            alice_tokens["refreshToken"].as_str().unwrap()
        )
        .await,
        400
    );
    // adminDeleteUser.
    let (dave, dave_tokens) = &held[1];
    let deleted = app
        .gql(
            "mutation($id: ID!) { adminDeleteUser(id: $id) }",
            json!({"id": dave.user_id}),
            Some(&admin),
        )
        .await;
    assert_eq!(deleted.0["data"]["adminDeleteUser"], true, "{}", deleted.0);
    let (status, _) = idp
        .userinfo(dave_tokens["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, 401);
    // Carol's tokens still work: only the deleted users' were revoked.
    let (carol, carol_tokens) = &held[2];
    let (status, _) = idp
        .userinfo(carol_tokens["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    // The provider down: the account goes all the same.
    idp.stop().await;
    let deleted = app
        .gql(
            "mutation { deleteAccount }",
            json!({}),
            Some(&carol.access_token),
        )
        .await;
    assert_eq!(deleted.0["data"]["deleteAccount"], true, "{}", deleted.0);
    assert_eq!(count(&app, "users").await, 0);
    assert_eq!(count(&app, "connections").await, 0);
}
