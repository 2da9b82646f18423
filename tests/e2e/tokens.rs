//! Access tokens under attack, keys and JWKS, machine tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{PASSWORD, code, spawn_app, spawn_app_with, spawn_on};

const ME: &str = "{ me { id } }";

fn ed25519_pem() -> String {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&rng).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_refused() {
    let app = spawn_app().await;
    let payload = app.sign_up("f@example.com").await;
    let token = payload.access_token.clone();
    let (head, rest) = token.split_once('.').unwrap();
    let (body, signature) = rest.split_once('.').unwrap();

    // Tampered claims with the original signature.
    let mut claims = claims_of(&token);
    claims["roles"] = json!(["admin"]);
    let tampered = format!("{head}.{}.{signature}", B64.encode(claims.to_string()));
    // alg none.
    let kid = header_of(&token)["kid"].clone();
    let none_head = B64.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let alg_none = format!("{none_head}.{body}.");
    // HS256 signed with the public key as the secret (alg confusion).
    let jwks: Value = serde_json::from_str(&app.get("/.well-known/jwks.json").await.2).unwrap();
    let public = jwks["keys"][0]["x"].as_str().unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = kid.as_str().map(str::to_owned);
    let confused = jsonwebtoken::encode(
        &hs,
        &claims_of(&token),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();

    for (name, bad) in [
        ("tampered", tampered.as_str()),
        ("alg none", alg_none.as_str()),
        ("hs256 confusion", confused.as_str()),
        ("garbage", "abc.def.ghi"),
        ("empty", ""),
    ] {
        let body = app.gql(ME, json!({}), Some(bad)).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{name}: {body}");
    }
    let no_token = app.gql(ME, json!({}), None).await;
    assert_eq!(code(&no_token), "UNAUTHENTICATED");
    // The genuine token still works.
    assert!(app.gql(ME, json!({}), Some(&token)).await["errors"].is_null());
}

#[tokio::test]
async fn expired_wrong_issuer_and_wrong_key_tokens_are_refused() {
    let dir = std::env::temp_dir().join(format!("auth-key-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("signing.pem");
    let pem = ed25519_pem();
    std::fs::write(&key_path, &pem).unwrap();
    let app = spawn_app_with(|c| c.signing_key_file = Some(key_path.clone())).await;
    let payload = app.sign_up("k@example.com").await;
    let token = payload.access_token.as_str();
    assert!(app.gql(ME, json!({}), Some(token)).await["errors"].is_null());
    let kid = header_of(token)["kid"].as_str().unwrap().to_owned();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.clone());
    let ours = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
    let sign =
        |claims: &Value, key: &EncodingKey| jsonwebtoken::encode(&header, claims, key).unwrap();

    // Our own key signs a re-issued token the API accepts: the harness is sound.
    let mut fresh = claims_of(token);
    fresh["jti"] = json!("re-signed");
    assert!(app.gql(ME, json!({}), Some(&sign(&fresh, &ours))).await["errors"].is_null());

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut expired = claims_of(token);
    expired["iat"] = json!(now - 3600);
    expired["exp"] = json!(now - 600);
    let mut issuer = claims_of(token);
    issuer["iss"] = json!("https://evil.example");
    let mut audience = claims_of(token);
    audience["aud"] = json!("someone-else");
    let other_key = EncodingKey::from_ed_pem(ed25519_pem().as_bytes()).unwrap();
    for (name, bad) in [
        ("expired", sign(&expired, &ours)),
        ("issuer", sign(&issuer, &ours)),
        ("audience", sign(&audience, &ours)),
        ("wrong key", sign(&claims_of(token), &other_key)),
    ] {
        let body = app.gql(ME, json!({}), Some(&bad)).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{name}: {body}");
    }
    let jwks: Value = serde_json::from_str(&app.get("/.well-known/jwks.json").await.2).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn jwks_discovery_and_rotation() {
    let app = spawn_app().await;
    let (status, headers, body) = app.get("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    let discovery: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(discovery["issuer"], app.base);
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.base)
    );
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let (_, headers, body) = app.get("/.well-known/jwks.json").await;
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let jwks: Value = serde_json::from_str(&body).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("OKP"), Some("EdDSA"), Some("sig"))
    );
    assert!(key.get("d").is_none(), "private part published: {key}");
    let before = app.sign_up("rot@example.com").await;
    let old_kid = header_of(&before.access_token)["kid"].clone();
    assert_eq!(old_kid, key["kid"]);

    // A rotation publishes the new key first: a restarted replica (same issuer) lists it,
    // and keeps signing with the old key until the pre-publication time has passed.
    let printed = app.cli(&["keys", "rotate"]).await;
    assert!(printed.contains("signs in 120 s"), "{printed}");
    let published = printed
        .split_whitespace()
        .nth(3)
        .expect("kid in output")
        .to_owned();
    let issuer = app.config.issuer.clone();
    let app = spawn_on(app.stop().await, |c| c.issuer = issuer.clone()).await;
    let jwks: Value = serde_json::from_str(&app.get("/.well-known/jwks.json").await.2).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(jwks["keys"][0]["kid"], published.as_str());
    let during = app.signed_in("rot@example.com", PASSWORD).await;
    let during = header_of(&during.access_token);
    assert_eq!(during["kid"], old_kid, "the new key does not sign yet");

    // A rotation without pre-publication signs with the new key at once.
    let printed = app
        .cli(&["keys", "rotate", "--prepublish-seconds", "0"])
        .await;
    assert!(printed.contains("signs in 0 s"), "{printed}");
    let app = spawn_on(app.stop().await, |c| c.issuer = issuer).await;
    let jwks: Value = serde_json::from_str(&app.get("/.well-known/jwks.json").await.2).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
    let after = app.signed_in("rot@example.com", PASSWORD).await;
    let new_kid = header_of(&after.access_token)["kid"].clone();
    assert_ne!(new_kid, old_kid);
    assert_ne!(new_kid, published.as_str());
    assert_eq!(jwks["keys"][0]["kid"], new_kid);
    // Tokens signed by the old key stay valid until they expire.
    assert!(app.gql(ME, json!({}), Some(&before.access_token)).await["errors"].is_null());
}

#[tokio::test]
async fn machine_tokens_are_shown_once_scoped_and_deletable() {
    let app = spawn_app().await;
    // It grants only scopes it holds: made on the command line with these three.
    let admin = app
        .machine_token("default", &["admin", "connections", "verify"])
        .await;
    assert!(admin.starts_with("mt_"));
    let created = app
        .gql("mutation { createApiToken(input: {name: \"ci\", scopes: [\"verify\", \"connections\"]}) { id secret token { name scopes } } }", json!({}), Some(&admin))
        .await;
    assert!(created["errors"].is_null(), "{created}");
    let secret = created["data"]["createApiToken"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("mt_"));
    assert_eq!(
        created["data"]["createApiToken"]["token"]["scopes"],
        json!(["connections", "verify"])
    );
    let listed = app
        .gql(
            "{ apiTokens { id name scopes lastUsedAt } }",
            json!({}),
            Some(&admin),
        )
        .await;
    let listed_text = listed.to_string();
    assert!(
        !listed_text.contains(&secret) && !listed_text.contains("mt_"),
        "secret listed: {listed_text}"
    );
    assert_eq!(listed["data"]["apiTokens"].as_array().unwrap().len(), 2);

    // A verify-scoped token is not an admin; a user without the role is not either.
    let not_admin = app
        .gql("{ apiTokens { id } }", json!({}), Some(&secret))
        .await;
    assert_eq!(code(&not_admin), "FORBIDDEN");
    let user = app.sign_up("plain@example.com").await;
    let user_try = app
        .gql("{ apiTokens { id } }", json!({}), Some(&user.access_token))
        .await;
    assert_eq!(code(&user_try), "FORBIDDEN");
    let bad_scope = app
        .gql(
            "mutation { createApiToken(input: {name: \"x\", scopes: [\"root\"]}) { id } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(code(&bad_scope), "BAD_USER_INPUT");
    // Machine tokens have no user.
    assert_eq!(
        code(&app.gql(ME, json!({}), Some(&admin)).await),
        "FORBIDDEN"
    );

    let id = created["data"]["createApiToken"]["id"].clone();
    let deleted = app
        .gql(
            "mutation($id: ID!) { deleteApiToken(id: $id) }",
            json!({"id": id}),
            Some(&admin),
        )
        .await;
    assert_eq!(deleted["data"]["deleteApiToken"], true);
    assert_eq!(
        code(
            &app.gql("{ apiTokens { id } }", json!({}), Some(&secret))
                .await
        ),
        "UNAUTHENTICATED"
    );
    let again = app
        .gql(
            "mutation($id: ID!) { deleteApiToken(id: $id) }",
            json!({"id": id}),
            Some(&admin),
        )
        .await;
    assert_eq!(code(&again), "NOT_FOUND");
    assert_eq!(
        code(&app.gql(ME, json!({}), Some("mt_forged")).await),
        "UNAUTHENTICATED"
    );
}
