//! Tokens the API did not mint: fresh Ed25519 keys, JWTs with exactly the header and claims a
//! test chooses (signed EdDSA or HMAC-SHA256), the claims and kid of a real token, and an API
//! that signs with a key the test holds, so a test can forge tokens with the real key too.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};

use super::app::{TestApp, spawn_on};
use super::db::TestDb;

/// A new Ed25519 key: the key pair and its PKCS#8 PEM.
pub(crate) fn ed25519() -> (Ed25519KeyPair, String) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = Ed25519KeyPair::generate_pkcs8v1(&rng).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(der.as_ref())
    );
    (
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.as_ref()).unwrap(),
        pem,
    )
}

/// The API in process, signing with the PKCS#8 PEM `pem` (written to the test database's
/// folder).
pub(crate) async fn spawn_app_signing_with(pem: &str) -> TestApp {
    let db = TestDb::new().await;
    let key_file = db.dir().join("signing.pem");
    std::fs::write(&key_file, pem).expect("key file");
    spawn_on(db, |c| c.signing_key_file = Some(key_file)).await
}

/// The public JWK of `key`.
pub(crate) fn jwk(key: &Ed25519KeyPair, kid: Option<&str>) -> Value {
    let mut jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
        "x": B64.encode(key.public_key().as_ref())});
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    jwk
}

/// `header.claims`, each the base64url of its JSON: what a JWT signs.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

/// A JWT with exactly this header and these claims, signed by `key` (EdDSA).
pub(crate) fn forge(header: &Value, claims: &Value, key: &Ed25519KeyPair) -> String {
    let input = signing_input(header, claims);
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.as_ref()))
}

/// A JWT with this header and claims, signed with HMAC-SHA256 under `secret`.
pub(crate) fn forge_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

/// The claims of a JWT, unverified.
pub(crate) fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT");
    serde_json::from_slice(&B64.decode(payload).expect("base64")).expect("claims")
}

/// The `kid` of a JWT's header.
pub(crate) fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("JWT header")
        .kid
        .expect("kid")
}
