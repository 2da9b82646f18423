//! End-to-end tests of `auth-verifier` following a real API: valid, forged, expired and
//! other-tenant tokens; revocations (sign-out, password change, account deletion, admin
//! actions, a signing key, a tenant) reaching it within a second; catching up after the API
//! restarts; two APIs on PostgreSQL; the `/introspect` caller rules; the tenant binding of
//! its own API token.
//!
//! The verifier runs in process ([`Verifier::spawn`]) and the API is a [`TestApp`] unless the
//! process is the point: the API processes that stop, restart or run side by side as
//! replicas; a verifier whose `/metrics` must be its own, or that must fail to start and say
//! why on stderr.
//!
//! [`TestApp`]: crate::support::TestApp

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};

use crate::support::{
    ApiProcess, AuthPayload, Client, MachineToken, PASSWORD, TestDb, Verifier, challenge,
    claims_of, ed25519, forge, forge_hs256, free_port, header, kid_of, spawn_app,
    spawn_app_signing_with, verifier_fails_to_start,
};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Machine token of scope `verify` for the verifier: bound to the tenant `default`.
async fn verify_token(api: &Client) -> String {
    api.machine_token("default", &["verify"]).await
}

/// Machine token of scopes `verify` and `platform`: a verifier (or introspection caller) that
/// sees every tenant.
async fn platform_verify_token(api: &Client) -> String {
    api.machine_token("default", &["verify", "platform"]).await
}

#[tokio::test]
async fn valid_forged_expired_and_other_tenant_tokens() {
    // The API signs with a key we hold too, so this test can mint expired and forged tokens
    // the verifier would otherwise never see.
    let (real_key, pem) = ed25519();
    let api = spawn_app_signing_with(&pem).await;
    // A process of its own: its `/metrics`, read at the end, must count its requests alone
    // (an in-process verifier records into the test process's one recorder).
    let v = Verifier::start_process(
        &api.base,
        Some(&verify_token(&api).await),
        &[("VERIFIER_TENANTS", "default")],
    )
    .await
    .ready()
    .await;
    // Every tenant: the verifier's token must hold `platform` (a `verify` token alone binds
    // the verifier to its tenant).
    let any_tenant = Verifier::spawn(&api.base, Some(&platform_verify_token(&api).await))
        .await
        .ready()
        .await;
    // The caller of the verifier's `/introspect`.
    let caller = verify_token(&api).await;

    let signed = api.sign_up("valid@example.com").await;
    let token = signed.access_token.clone();

    // Valid: 200 with the identity headers, on /verify and any path and method under it.
    let (status, h) = v.verify(Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-auth-user"), signed.user_id);
    assert_eq!(header(&h, "x-auth-session"), signed.session_id);
    assert_eq!(header(&h, "x-auth-tenant"), "default");
    assert!(h.contains_key("x-auth-roles"));
    let r = v
        .client
        .post(format!("{}/verify/some/original/path?x=1", v.base))
        .bearer_auth(&token)
        .body("ignored")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "POST /verify/* is a check too");

    // No token: 401 with a bare challenge.
    let (status, h) = v.verify(None).await;
    assert_eq!(status, 401);
    assert_eq!(challenge(&h), "Bearer realm=\"auth\"");

    let kid = kid_of(&token);
    let header_ed = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let claims = claims_of(&token);

    // Control: a token we mint with the API's key and fresh claims passes, so the refusals
    // below are about what each one changes.
    let mut fresh = claims.clone();
    fresh["jti"] = json!("minted-by-test");
    let minted = forge(&header_ed, &fresh, &real_key);
    assert_eq!(
        v.verify(Some(&minted)).await.0,
        200,
        "a well-formed minted token passes"
    );

    let mut expired = claims.clone();
    expired["iat"] = json!(now() - 3600);
    expired["exp"] = json!(now() - 600);
    let bad_wrong_aud = {
        let mut c = claims.clone();
        c["aud"] = json!("someone-else");
        c
    };
    let bad_wrong_iss = {
        let mut c = claims.clone();
        c["iss"] = json!("http://evil.example");
        c
    };
    let (other_key, _) = ed25519();
    let header_unknown = json!({"alg": "EdDSA", "typ": "JWT", "kid": "no-such-kid"});

    // Tampered: the payload changed, the signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!("someone-else");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(tampered_claims.to_string()),
        parts[2]
    );
    // alg none.
    let none_header = B64URL.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let alg_none = format!("{none_header}.{}.", parts[1]);
    // HS256 with the public key as the HMAC secret (the classic key-confusion forgery).
    let jwks: Value = api
        .client
        .get(format!("{}/.well-known/jwks.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == json!(kid))
        .expect("our key is published")["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let header_hs = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let hs_raw = forge_hs256(&header_hs, &claims, &B64URL.decode(&x).unwrap());
    let hs_text = forge_hs256(&header_hs, &claims, x.as_bytes());

    let refused = [
        ("expired", forge(&header_ed, &expired, &real_key)),
        (
            "wrong audience",
            forge(&header_ed, &bad_wrong_aud, &real_key),
        ),
        ("wrong issuer", forge(&header_ed, &bad_wrong_iss, &real_key)),
        (
            "wrong key, same kid",
            forge(&header_ed, &claims, &other_key),
        ),
        (
            "wrong key, unknown kid",
            forge(&header_unknown, &claims, &other_key),
        ),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("HS256 with the raw public key", hs_raw),
        ("HS256 with the JWK x text", hs_text),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, bad) in &refused {
        let (status, h) = v.verify(Some(bad)).await;
        assert_eq!(status, 401, "{what} must be refused");
        let c = challenge(&h);
        assert!(
            c.starts_with("Bearer realm=\"auth\"") && c.contains("error=\"invalid_token\""),
            "{what}: challenge {c}"
        );
        let (status, _, body) = v.introspect(Some(&caller), bad, &[]).await;
        assert_eq!((status, body), (200, json!({"active": false})), "{what}");
    }

    // Introspection of the good token, form and JSON.
    let (_, _, form) = v.introspect(Some(&caller), &token, &[]).await;
    assert_eq!(form["active"], json!(true));
    assert_eq!(form["sub"], signed.user_id);
    assert_eq!(form["sid"], signed.session_id);
    assert_eq!(form["tid"], json!("default"));
    assert_eq!(form["iss"], json!(api.issuer));
    let by_json: Value = v
        .client
        .post(format!("{}/introspect", v.base))
        .bearer_auth(&caller)
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_json, form);

    // Other tenant: a good token of `acme` is 403 where only `default` is accepted.
    let platform = api.machine_token("default", &["platform"]).await;
    api.create_tenant(&platform, "acme").await;
    let acme = api.sign_up_in("acme@example.com", Some("acme")).await;
    let acme_token = acme.access_token.as_str();
    let (status, h) = v.verify(Some(acme_token)).await;
    assert_eq!(status, 403, "tenant not accepted here");
    assert!(challenge(&h).contains("insufficient_scope"));
    let (status, h) = any_tenant.verify(Some(acme_token)).await;
    assert_eq!(status, 200, "a verifier without a tenant list accepts acme");
    assert_eq!(header(&h, "x-auth-tenant"), "acme");

    let (status, metrics) = v.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("verifier_requests_total{outcome=\"allowed\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("verifier_feed_connected 1"), "{metrics}");
}

#[tokio::test]
async fn sign_out_is_refused_within_a_second_and_machine_tokens_are_checked() {
    let api = spawn_app().await;
    let v = Verifier::spawn(&api.base, Some(&verify_token(&api).await))
        .await
        .ready()
        .await;

    let a = api.sign_up("revoke@example.com").await;
    let token = a.access_token.clone();
    let other = api.signed_in("revoke@example.com", PASSWORD).await;
    let other_token = other.access_token.clone();
    assert_eq!(v.verify(Some(&token)).await.0, 200);
    assert_eq!(v.verify(Some(&other_token)).await.0, 200);
    api.sign_out(&token).await;
    let took = v.until(&token, 401, Duration::from_secs(1)).await;
    eprintln!("sign-out reached the verifier in {took:?}");
    let (_, h) = v.verify(Some(&token)).await;
    assert!(challenge(&h).contains("revoked"), "{}", challenge(&h));
    assert_eq!(
        v.verify(Some(&other_token)).await.0,
        200,
        "the other session is untouched"
    );

    // revokeAllSessions: a user cut-off.
    let all = api
        .gql(
            "mutation { revokeAllSessions }",
            json!({}),
            Some(&other_token),
        )
        .await;
    assert!(all["errors"].is_null(), "{all}");
    v.until(&other_token, 401, Duration::from_secs(1)).await;

    // Machine tokens are introspected through the API, and dropped when deleted.
    let MachineToken { id, secret } = api.create_machine_token("default", &["admin"]).await;
    let (status, h) = v.verify(Some(&secret)).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-auth-token-type"), "machine_token");
    assert_eq!(header(&h, "x-auth-user"), id);
    assert_eq!(v.verify(Some("mt_not_a_real_token")).await.0, 401);
    let admin = api.machine_token("default", &["admin"]).await;
    let deleted = api
        .gql(
            "mutation($id: ID!) { deleteApiToken(id: $id) }",
            json!({"id": id}),
            Some(&admin),
        )
        .await;
    assert_eq!(deleted["data"]["deleteApiToken"], json!(true), "{deleted}");
    v.until(&secret, 401, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn password_change_account_deletion_and_admin_actions_reach_the_verifier() {
    let api = spawn_app().await;
    let v = Verifier::spawn(&api.base, Some(&verify_token(&api).await))
        .await
        .ready()
        .await;
    let admin = api.machine_token("default", &["admin"]).await;
    let user = |p: &AuthPayload| p.user_id.clone();
    let access = |p: &AuthPayload| p.access_token.clone();
    let ok = |body: &Value, field: &str| {
        assert!(
            body["errors"].is_null() && !body["data"][field].is_null(),
            "{field}: {body}"
        );
    };

    // changePassword: the other session is refused, the caller's goes on.
    let here = api.sign_up("changes@example.com").await;
    let there = api.signed_in("changes@example.com", PASSWORD).await;
    assert_eq!(v.verify(Some(&access(&there))).await.0, 200);
    let body = api
        .gql(
            "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) }",
            json!({"c": PASSWORD, "n": "a fresh and long passphrase"}),
            Some(&access(&here)),
        )
        .await;
    ok(&body, "changePassword");
    v.until(&access(&there), 401, Duration::from_secs(1)).await;
    assert_eq!(v.verify(Some(&access(&here))).await.0, 200);

    // deleteAccount.
    let leaving = api.sign_up("leaves@example.com").await;
    assert_eq!(v.verify(Some(&access(&leaving))).await.0, 200);
    let body = api
        .gql(
            "mutation { deleteAccount }",
            json!({}),
            Some(&access(&leaving)),
        )
        .await;
    ok(&body, "deleteAccount");
    v.until(&access(&leaving), 401, Duration::from_secs(1))
        .await;

    // adminRevokeSessions and adminDeleteUser.
    for (op, field) in [
        (
            "mutation($u: ID!) { adminRevokeSessions(userId: $u) }",
            "adminRevokeSessions",
        ),
        (
            "mutation($u: ID!) { adminDeleteUser(id: $u) }",
            "adminDeleteUser",
        ),
    ] {
        let target = api.sign_up(&format!("{field}@example.com")).await;
        assert_eq!(v.verify(Some(&access(&target))).await.0, 200);
        let body = api.gql(op, json!({"u": user(&target)}), Some(&admin)).await;
        ok(&body, field);
        v.until(&access(&target), 401, Duration::from_secs(1)).await;
    }
    assert_eq!(
        v.verify(Some(&access(&here))).await.0,
        200,
        "bystander untouched"
    );
}

#[tokio::test]
async fn a_revoked_signing_key_is_refused_everywhere_and_replaced() {
    let api = spawn_app().await;
    let v = Verifier::spawn(&api.base, Some(&verify_token(&api).await))
        .await
        .ready()
        .await;
    let before = api.sign_up("keys@example.com").await;
    let old = before.access_token.clone();
    let old_kid = kid_of(&old);
    assert_eq!(v.verify(Some(&old)).await.0, 200);

    let out = api.cli(&["keys", "revoke", &old_kid]).await;
    assert!(out.contains("new signing key"), "{out}");

    // The verifier refuses the old key's tokens at once; the running API within its feed tick.
    v.until(&old, 401, Duration::from_secs(1)).await;
    let start = Instant::now();
    loop {
        let me = api.gql("{ me { id } }", json!({}), Some(&old)).await;
        if me["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the API still accepts: {me}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jwks: Value = api
        .client
        .get(format!("{}/.well-known/jwks.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kid"] != old_kid.as_str()),
        "{jwks}"
    );

    // New tokens come from the new key, and the verifier (which fetched the JWK set when it
    // heard of the revocation) accepts them at once.
    let after = api.signed_in("keys@example.com", PASSWORD).await;
    let new = after.access_token.as_str();
    assert_ne!(kid_of(new), old_kid);
    v.until(new, 200, Duration::from_secs(1)).await;
    assert!(api.gql("{ me { id } }", json!({}), Some(new)).await["errors"].is_null());
}

#[tokio::test]
async fn verifier_catches_up_after_the_api_restarts() {
    let db = TestDb::new().await;
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut api = ApiProcess::start_on(&db, port, &issuer).await;
    // In process: the API is what stops here. The only verifier in this test process, so
    // its `/metrics` below are its own.
    let v = Verifier::spawn_with(&api.base, Some(&verify_token(&api).await), |c| {
        c.staleness_limit = Duration::from_secs(2)
    })
    .await
    .ready()
    .await;
    let a = api.sign_up("restart@example.com").await;
    let token = a.access_token.clone();
    let b = api.signed_in("restart@example.com", PASSWORD).await;
    let kept = b.access_token.clone();
    assert_eq!(v.verify(Some(&token)).await.0, 200);

    // The API goes away: within the staleness limit the verifier stays ready but says it is
    // degraded (an API restart must not take every verifier out of rotation), and keeps
    // verifying; past the limit it is not ready and refuses tokens.
    api.stop();
    let dropped = Instant::now();
    let deadline = dropped + Duration::from_secs(25);
    let mut degraded_seen = false;
    let not_ready_after = loop {
        let (status, body) = v.get("/readyz").await;
        let elapsed = dropped.elapsed();
        if status == 503 {
            assert!(body.contains("\"feed_connected\":false"), "{body}");
            assert!(body.contains("\"status\":\"not ready\""), "{body}");
            break elapsed;
        }
        assert_eq!(status, 200, "{body}");
        if body.contains("\"status\":\"degraded\"") {
            assert!(body.contains("\"feed_connected\":false"), "{body}");
            if !degraded_seen {
                degraded_seen = true;
                let (_, metrics) = v.get("/metrics").await;
                assert!(metrics.contains("verifier_feed_degraded 1"), "{metrics}");
                assert!(metrics.contains("verifier_feed_connected 0"), "{metrics}");
                assert!(metrics.contains("verifier_feed_stale 0"), "{metrics}");
                assert_eq!(v.verify(Some(&kept)).await.0, 200, "still verifying");
            }
        }
        assert!(
            Instant::now() < deadline,
            "readyz still ready with the API down: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(degraded_seen, "never degraded before not ready");
    // The limit (2 s) counts from the feed's last sign of life (a ping every 5 s at most).
    assert!(
        not_ready_after <= Duration::from_secs(3),
        "not ready only after {not_ready_after:?}"
    );
    let (_, metrics) = v.get("/metrics").await;
    assert!(metrics.contains("verifier_feed_stale 1"), "{metrics}");
    assert!(metrics.contains("verifier_feed_degraded 0"), "{metrics}");
    v.until(&kept, 401, Duration::from_secs(10)).await;
    let (_, h) = v.verify(Some(&kept)).await;
    assert!(
        challenge(&h).contains("cannot currently confirm"),
        "{}",
        challenge(&h)
    );

    // A revocation made while the verifier is disconnected, through a second API process.
    // Same database, master key and issuer: it serves the same sessions.
    let other = ApiProcess::start_on(&db, free_port(), &issuer).await;
    other.sign_out(&token).await;
    drop(other);

    // The first API comes back on its address; the verifier reconnects (retrying at most
    // 0.8 s apart while the API is away), reloads, catches up.
    api.restart().await;
    let reconnect = v.until(&kept, 200, Duration::from_secs(10)).await;
    eprintln!("verifier back {reconnect:?} after the API answered again");
    assert!(
        reconnect < Duration::from_millis(1500),
        "reconnected only after {reconnect:?}"
    );
    assert_eq!(
        v.verify(Some(&token)).await.0,
        401,
        "the revocation made while away is known"
    );
    let (status, _) = v.get("/readyz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn two_apis_on_postgres_two_verifiers_both_refuse_within_a_second() {
    let db = TestDb::new().await;
    if !db.is_postgres() {
        eprintln!("skipped: needs PostgreSQL (TEST_DATABASE_URL); SQLite has one API process");
        return;
    }
    let port1 = free_port();
    let issuer = format!("http://127.0.0.1:{port1}");
    let api1 = ApiProcess::start_on(&db, port1, &issuer).await;
    let api2 = ApiProcess::start_on(&db, free_port(), &issuer).await;
    let token = verify_token(&api1).await;
    let v1 = Verifier::spawn(&api1.base, Some(&token))
        .await
        .ready()
        .await;
    let v2 = Verifier::spawn(&api2.base, Some(&token))
        .await
        .ready()
        .await;

    let s = api1.sign_up("pg@example.com").await;
    let access = s.access_token.clone();
    assert_eq!(v1.verify(Some(&access)).await.0, 200);
    assert_eq!(v2.verify(Some(&access)).await.0, 200);
    api1.sign_out(&access).await;
    let (t1, t2) = tokio::join!(
        v1.until(&access, 401, Duration::from_secs(1)),
        v2.until(&access, 401, Duration::from_secs(1)),
    );
    eprintln!(
        "revocation through API 1 reached verifier 1 in {t1:?}, verifier 2 (on API 2) in {t2:?}"
    );

    // And the other way round.
    let again = api2.signed_in("pg@example.com", PASSWORD).await;
    let access = again.access_token.clone();
    assert_eq!(v1.verify(Some(&access)).await.0, 200);
    api2.sign_out(&access).await;
    v1.until(&access, 401, Duration::from_secs(1)).await;
    v2.until(&access, 401, Duration::from_secs(1)).await;
}

/// The verifier's `POST /introspect` authenticates its caller: 401 without a token (unless the
/// loopback exemption is on and nothing says the request was forwarded), 401 with a bad one,
/// 403 without scope `verify`; a `verify` token sees its own tenant's tokens only, one with
/// `platform` too sees every tenant's.
#[tokio::test]
async fn introspect_callers_authenticate_and_see_only_their_own_tenant() {
    let api = spawn_app().await;
    let platform = platform_verify_token(&api).await;
    // With a token, the exemption is off unless asked for.
    let v = Verifier::spawn(&api.base, Some(&platform))
        .await
        .ready()
        .await;
    let exempt = Verifier::spawn_with(&api.base, Some(&platform), |c| {
        c.introspect_loopback_no_token = Some(true)
    })
    .await
    .ready()
    .await;
    api.create_tenant(&platform, "acme").await;
    let default_user = api.sign_up("intro@example.com").await;
    let default_access = default_user.access_token.clone();
    let acme_user = api.sign_up_in("intro@example.com", Some("acme")).await;
    let acme_access = acme_user.access_token.clone();
    let verify_default = verify_token(&api).await;
    let verify_acme = api.machine_token("acme", &["verify"]).await;
    let MachineToken {
        id: admin_id,
        secret: admin,
    } = api.create_machine_token("default", &["admin"]).await;
    let active = |body: &Value| body["active"] == json!(true);

    // No token: 401 with a bare challenge, and nothing about the token.
    let (status, c, body) = v.introspect(None, &default_access, &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(c, "Bearer realm=\"auth\"");
    assert!(body.get("active").is_none(), "{body}");
    // A bad token: 401 invalid_token.
    for bad in ["mt_not_a_real_token", "not.a.jwt"] {
        let (status, c, _) = v.introspect(Some(bad), &default_access, &[]).await;
        assert_eq!(status, 401, "{bad}");
        assert!(c.contains("error=\"invalid_token\""), "{bad}: {c}");
    }
    // Valid tokens without scope `verify`: 403 insufficient_scope.
    for (what, token) in [
        ("admin machine token", &admin),
        ("access token", &default_access),
    ] {
        let (status, c, body) = v.introspect(Some(token), &default_access, &[]).await;
        assert_eq!(status, 403, "{what}: {body}");
        assert!(c.contains("error=\"insufficient_scope\""), "{what}: {c}");
        assert!(body.get("active").is_none(), "{what}: {body}");
    }
    // A `verify` token: the answer.
    let (status, _, body) = v
        .introspect(Some(&verify_default), &default_access, &[])
        .await;
    assert_eq!(status, 200);
    assert!(active(&body), "{body}");
    assert_eq!(body["sub"], default_user.user_id);
    assert_eq!(body["tid"], json!("default"));

    // The tenant wall, for access and machine tokens.
    for (caller, token, sees) in [
        (&verify_acme, &default_access, false),
        (&verify_acme, &admin, false),
        (&verify_acme, &acme_access, true),
        (&verify_default, &acme_access, false),
        (&verify_default, &admin, true),
        (&platform, &acme_access, true),
        (&platform, &default_access, true),
        (&platform, &admin, true),
    ] {
        let (status, _, body) = v.introspect(Some(caller), token, &[]).await;
        assert_eq!(status, 200, "{body}");
        if sees {
            assert!(active(&body), "{body}");
        } else {
            assert_eq!(body, json!({"active": false}), "another tenant's token");
        }
    }
    let (_, _, body) = v.introspect(Some(&platform), &admin, &[]).await;
    assert_eq!(body["client_id"], json!(admin_id));
    assert_eq!(body["token_type"], json!("machine_token"));

    // The exemption: a plain loopback request is answered without a token...
    let (status, _, body) = exempt.introspect(None, &acme_access, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(active(&body), "{body}");
    // ...never one that says it was forwarded (a same-host reverse proxy)...
    for (name, value) in [
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9"),
        ("X-Forwarded-Host", "auth.example.com"),
        ("X-Forwarded-Proto", "https"),
        ("X-Real-IP", "203.0.113.9"),
    ] {
        let (status, c, _) = exempt
            .introspect(None, &acme_access, &[(name, value)])
            .await;
        assert_eq!(status, 401, "{name}");
        assert_eq!(c, "Bearer realm=\"auth\"", "{name}");
    }
    // ...and a presented token is checked all the same.
    let (status, _, _) = exempt.introspect(Some(&admin), &acme_access, &[]).await;
    assert_eq!(status, 403);
    let (status, _, _) = exempt
        .introspect(Some("mt_not_a_real_token"), &acme_access, &[])
        .await;
    assert_eq!(status, 401);
    let (status, _, body) = exempt
        .introspect(Some(&verify_default), &acme_access, &[])
        .await;
    assert_eq!((status, body), (200, json!({"active": false})));

    // Without a token the exemption is on by default (the zero-config loopback setup), and
    // off when turned off.
    let off = Verifier::spawn_with(&api.base, None, |c| {
        c.introspect_loopback_no_token = Some(false)
    })
    .await;
    assert_eq!(off.introspect(None, &default_access, &[]).await.0, 401);
    if api.db.is_postgres() {
        eprintln!("skipped the tokenless verifier: the API's feed needs a token on PostgreSQL");
        return;
    }
    let dev = Verifier::spawn(&api.base, None).await.ready().await;
    let (status, _, body) = dev.introspect(None, &default_access, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(active(&body), "{body}");
    let (status, _, _) = dev
        .introspect(None, &default_access, &[("X-Forwarded-For", "203.0.113.9")])
        .await;
    assert_eq!(status, 401);
}

/// `deleteTenant` writes a `tenant` entry; it cuts off the tenant's machine tokens at every
/// verifier within a second, though their introspection answers are cached for 30 s.
#[tokio::test]
async fn deleting_a_tenant_refuses_its_machine_tokens_within_a_second() {
    let api = spawn_app().await;
    let platform = platform_verify_token(&api).await;
    let v = Verifier::spawn(&api.base, Some(&platform))
        .await
        .ready()
        .await;
    api.create_tenant(&platform, "acme").await;
    let acme_machine = api.machine_token("acme", &["admin"]).await;
    let default_machine = api.machine_token("default", &["admin"]).await;
    let (status, h) = v.verify(Some(&acme_machine)).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-auth-tenant"), "acme");
    assert_eq!(v.verify(Some(&default_machine)).await.0, 200);

    let deleted = api
        .gql(
            "mutation { deleteTenant(slug: \"acme\") }",
            json!({}),
            Some(&platform),
        )
        .await;
    assert_eq!(deleted["data"]["deleteTenant"], json!(true), "{deleted}");
    let took = v.until(&acme_machine, 401, Duration::from_secs(1)).await;
    eprintln!("deleteTenant reached the verifier's cached machine token in {took:?}");
    let (_, h) = v.verify(Some(&acme_machine)).await;
    assert!(
        challenge(&h).contains("error=\"invalid_token\""),
        "{}",
        challenge(&h)
    );
    assert_eq!(
        v.verify(Some(&default_machine)).await.0,
        200,
        "another tenant's machine token is untouched"
    );
}

/// A verifier whose API token holds `verify` but not `platform` learns at start that the token
/// is bound to its tenant, and accepts only that tenant's tokens (the API shows it only that
/// tenant's revocations); with `platform` too it accepts every tenant's. Tokens the API
/// refuses, tokens without `verify`, and a `VERIFIER_TENANTS` beyond the token's tenant stop
/// start-up with a message naming the settings.
#[tokio::test]
async fn a_tenant_bound_api_token_binds_the_verifier_to_its_tenant() {
    let api = spawn_app().await;
    let platform = platform_verify_token(&api).await;
    let bound = Verifier::spawn(&api.base, Some(&verify_token(&api).await))
        .await
        .ready()
        .await;
    let every = Verifier::spawn(&api.base, Some(&platform))
        .await
        .ready()
        .await;
    api.create_tenant(&platform, "acme").await;
    let default_access = api.sign_up("bound@example.com").await.access_token;
    let acme_access = api
        .sign_up_in("bound@example.com", Some("acme"))
        .await
        .access_token;
    let acme_machine = api.machine_token("acme", &["admin"]).await;

    assert_eq!(bound.verify(Some(&default_access)).await.0, 200);
    let (status, h) = bound.verify(Some(&acme_access)).await;
    assert_eq!(status, 403, "another tenant's valid access token");
    assert!(
        challenge(&h).contains("insufficient_scope"),
        "{}",
        challenge(&h)
    );
    // Another tenant's machine token: the API answers a tenant-bound verifier's introspection
    // with `{"active": false}` (401 here); an API that answers anyway meets the tenant check
    // (403). Refused either way.
    let (status, _) = bound.verify(Some(&acme_machine)).await;
    assert!(
        matches!(status, 401 | 403),
        "another tenant's machine token: {status}"
    );
    for token in [&default_access, &acme_access, &acme_machine] {
        assert_eq!(every.verify(Some(token)).await.0, 200);
    }

    let admin = api.machine_token("default", &["admin"]).await;
    let verify = verify_token(&api).await;
    for (what, token, extra, names) in [
        (
            "unknown token",
            "mt_not_a_real_token",
            &[][..],
            &["VERIFIER_API_TOKEN"][..],
        ),
        (
            "no scope verify",
            &admin,
            &[],
            &["VERIFIER_API_TOKEN", "verify"],
        ),
        (
            "tenants beyond the token's",
            &verify,
            &[("VERIFIER_TENANTS", "default,acme")],
            &[
                "VERIFIER_TENANTS",
                "VERIFIER_API_TOKEN",
                "`acme`",
                "`default`",
            ],
        ),
    ] {
        let err = verifier_fails_to_start(&api.base, token, extra).await;
        for name in names {
            assert!(err.contains(name), "{what}: no {name} in: {err}");
        }
        assert!(!err.contains(token), "{what}: the token is printed: {err}");
    }
    // The tenant list may name the token's own tenant.
    let own = Verifier::spawn_with(&api.base, Some(&verify), |c| {
        c.tenants = vec!["default".to_owned()]
    })
    .await
    .ready()
    .await;
    assert_eq!(own.verify(Some(&default_access)).await.0, 200);
    assert_eq!(own.verify(Some(&acme_access)).await.0, 403);
}

/// Reads the revocation stream resuming after `after` (with the low-water mark `complete`,
/// if any) for `within`, or until it holds `until`: what it said.
async fn read_stream(
    api: &Client,
    token: &str,
    after: i64,
    complete: Option<i64>,
    within: Duration,
    until: &str,
) -> String {
    let query = complete.map_or(String::new(), |c| format!("?complete={c}"));
    let mut stream = api
        .client
        .get(format!("{}/internal/revocations/stream{query}", api.base))
        .bearer_auth(token)
        .header("last-event-id", after.to_string())
        .send()
        .await
        .expect("stream opens");
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    let _ = tokio::time::timeout(within, async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(until) {
                return;
            }
        }
    })
    .await;
    seen
}

/// The list once the poller's low-water mark has caught up with its cursor.
async fn caught_up_list(api: &Client, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = api.get_json("/internal/revocations", Some(token)).await;
        if list["complete_to"].as_i64() >= list["cursor"].as_i64() {
            return list;
        }
        assert!(Instant::now() < deadline, "low-water mark behind: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The list's `complete_to` lets a stream resuming from it skip the look-back over what the
/// list already holds: an entry of the last 30 s is replayed without it, not with it; new
/// entries still come.
#[tokio::test]
async fn the_lists_low_water_mark_keeps_the_streams_look_back_short() {
    let app = spawn_app().await;
    let token = verify_token(&app).await;
    let first = app.sign_up("mark@example.com").await;
    let second = app.signed_in("mark@example.com", PASSWORD).await;
    app.sign_out(&second.access_token).await;
    let list = caught_up_list(&app, &token).await;
    let cursor = list["cursor"].as_i64().unwrap();
    let complete = list["complete_to"].as_i64().unwrap();
    assert!(list.to_string().contains(&second.session_id), "{list}");
    assert_eq!(complete, cursor, "{list}");

    // Without the mark the look-back replays the sign-out (written seconds ago).
    let full = read_stream(
        &app,
        &token,
        cursor,
        None,
        Duration::from_secs(3),
        &second.session_id,
    )
    .await;
    assert!(full.contains(&second.session_id), "{full}");
    // With it nothing is replayed; what comes next still comes.
    let (short, ()) = tokio::join!(
        read_stream(
            &app,
            &token,
            cursor,
            Some(complete),
            Duration::from_secs(5),
            &first.session_id,
        ),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            app.sign_out(&first.access_token).await;
        }
    );
    assert!(short.contains(&first.session_id), "{short}");
    assert!(!short.contains(&second.session_id), "{short}");
    // A mark past the cursor is clamped to it: the entries after the cursor still come.
    let clamped = read_stream(
        &app,
        &token,
        cursor,
        Some(i64::MAX),
        Duration::from_secs(3),
        &first.session_id,
    )
    .await;
    assert!(clamped.contains(&first.session_id), "{clamped}");
}

/// On PostgreSQL a seq is taken at insert and becomes visible at commit: a revocation that
/// commits after a later one must still reach a verifier whose list and stream start past
/// it, both live (the verifier is connected when it commits) and from a stream opened after
/// (its seq is above the list's low-water mark, so the look-back still covers it).
#[tokio::test]
async fn a_revocation_that_commits_late_reaches_a_verifier_listed_past_it() {
    let app = spawn_app().await;
    if !app.db.is_postgres() {
        eprintln!("skipped: SQLite hands out seqs in commit order");
        return;
    }
    let store = app.store().await;
    let token = verify_token(&app).await;
    let user = app.sign_up("late@example.com").await;
    let victim = app.signed_in("late@example.com", PASSWORD).await;
    let other = app.signed_in("late@example.com", PASSWORD).await;
    let _ = caught_up_list(&app, &token).await;

    // Transaction A takes a seq for the victim's session and does not commit yet…
    let mut early = store.pool().begin().await.unwrap();
    let early_seq: i64 = sqlx::query_scalar(
        "INSERT INTO revocations (tenant, kind, subject, iat_cutoff, expires_at, created_at) \
         VALUES ('default', 'session', $1, NULL, $2, $3) RETURNING seq",
    )
    .bind(&victim.session_id)
    .bind(now() + 3600)
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
    // A verifier starting now is listed past A, with a low-water mark below it.
    let v = Verifier::spawn(&app.base, Some(&token)).await.ready().await;
    v.until(&other.access_token, 401, Duration::from_secs(1))
        .await;
    let list = app.get_json("/internal/revocations", Some(&token)).await;
    let cursor = list["cursor"].as_i64().unwrap();
    let complete = list["complete_to"].as_i64().unwrap();
    assert!(cursor > early_seq && complete < early_seq, "{list}");
    assert_eq!(v.verify(Some(&victim.access_token)).await.0, 200);

    // A commits: the connected verifier refuses the victim's token once the API's poller
    // has seen it (nothing wakes the poller for this raw insert: its one-second tick does)…
    early.commit().await.unwrap();
    let took = v
        .until(&victim.access_token, 401, Duration::from_secs(3))
        .await;
    eprintln!("late commit reached the verifier in {took:?}");
    // …and a stream opened now from that list (cursor past A, its mark below A) replays it.
    let replay = read_stream(
        &app,
        &token,
        cursor,
        Some(complete),
        Duration::from_secs(3),
        &victim.session_id,
    )
    .await;
    assert!(replay.contains(&format!("id: {early_seq}")), "{replay}");
}

/// On PostgreSQL the replicas hear of feed entries by `NOTIFY`, sent by a trigger with the
/// commit of whatever wrote them (a raw insert too, no code of ours asked for it), and not
/// before the transaction commits.
#[tokio::test]
async fn a_feed_entry_notifies_the_replicas_when_it_commits() {
    let app = spawn_app().await;
    if !app.db.is_postgres() {
        eprintln!("skipped: SQLite has one process and no channel");
        return;
    }
    let store = app.store().await;
    let mut listener = sqlx::postgres::PgListener::connect(&app.db.url)
        .await
        .unwrap();
    listener.listen("auth_revocations").await.unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO revocations (tenant, kind, subject, iat_cutoff, expires_at, created_at) \
         VALUES ('default', 'session', 'no-such-session', NULL, $1, $2)",
    )
    .bind(now() + 3600)
    .bind(auth_api::domain::now_ms())
    .execute(&mut *tx)
    .await
    .unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(early.is_err(), "notified before the commit: {early:?}");
    tx.commit().await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(2), listener.recv())
        .await
        .expect("no notification within 2 s of the commit")
        .unwrap();
    assert_eq!(heard.channel(), "auth_revocations");
}
