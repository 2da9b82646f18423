//! The verifier's token check (`Verifier::check`: parsing, signature, claims, cache,
//! revocation and tenant checks) never panics on any bearer token, and answers a token the
//! same way from its cache as the first time. The first byte picks the input's shape: the
//! raw token; claims signed with the verifier's key under a good header; or a header and
//! claims (split at the first newline) signed with that key. So the fuzzer reaches the
//! claims and their checks, not only the signature refusing everything.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use auth_protocol::{Jwk, JwkSet};
use auth_verifier::client::ApiClient;
use auth_verifier::feed::FeedState;
use auth_verifier::keys::{Expectations, Keys};
use auth_verifier::verify::{Checked, Verifier};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;

/// `iss` the verifier expects (the seeds use it).
const ISSUER: &str = "http://issuer.test";
/// `aud` it expects.
const AUDIENCE: &str = "auth";

struct World {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    key: Ed25519KeyPair,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // A fixed key, so that the committed corpus stays signed by it.
        let key = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("key");
        // Nothing listens there: machine tokens and unknown kids fail fast, as with the API
        // away.
        let api = ApiClient::new("http://127.0.0.1:9", None).expect("client");
        let verifier = Verifier::new(
            api,
            Arc::new(FeedState::synced(Duration::from_secs(3600))),
            10_000,
            Duration::from_secs(60),
            5,
        );
        let keys = Keys::new(
            Expectations {
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                leeway: 5,
            },
            Duration::from_secs(24 * 3600),
        );
        keys.install(&JwkSet {
            keys: vec![Jwk {
                kty: "OKP".into(),
                kid: "k1".into(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
                crv: Some("Ed25519".into()),
                x: Some(B64.encode(key.public_key().as_ref())),
                y: None,
                n: None,
                e: None,
            }],
        });
        let _ = verifier.keys.set(keys);
        verifier.accept_tenants(Vec::new());
        World {
            runtime,
            verifier,
            key,
        }
    })
}

fn signed(key: &Ed25519KeyPair, header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let world = world();
    let token = match shape % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => signed(&world.key, br#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#, rest),
        _ => {
            let at = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let (header, claims) = rest.split_at(at);
            signed(&world.key, header, claims.get(1..).unwrap_or_default())
        }
    };
    let first = world.runtime.block_on(world.verifier.check(&token));
    if let Ok(Checked::Access(identity)) = &first {
        assert_eq!(identity.kid(), "k1");
    }
    let again = world.runtime.block_on(world.verifier.check(&token));
    assert_eq!(
        first.is_ok(),
        again.is_ok(),
        "cached answer differs: {first:?} then {again:?}"
    );
});
