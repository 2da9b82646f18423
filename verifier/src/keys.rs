//! Signing keys: the API's JWK set turned into ready-to-use verification keys, each with the
//! algorithm of its JWK (never the one a token names) and a prebuilt `Validation`: the one
//! policy of [`auth_protocol::validation`] (issuer, audience, required claims, expiry,
//! not-before, leeway). An unknown `kid` triggers a refetch, at most once per configured
//! interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use auth_protocol::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};

use crate::client::ApiClient;
use crate::error::Error;

/// One verification key.
pub struct VerifyKey {
    /// Decoding key built from the JWK.
    pub key: DecodingKey,
    /// The validation policy, pinned to the JWK's algorithm.
    pub validation: Validation,
}

/// What tokens must say about who issued them and for whom.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway: u64,
}

/// The current key set, shared by every check.
pub struct Keys {
    map: RwLock<HashMap<String, Arc<VerifyKey>>>,
    expect: Expectations,
    loaded: AtomicBool,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_interval: Duration,
}

impl Keys {
    /// An empty key set; nothing verifies until [`Keys::refresh`] succeeds.
    pub fn new(expect: Expectations, min_interval: Duration) -> Self {
        Keys {
            map: RwLock::default(),
            expect,
            loaded: AtomicBool::new(false),
            last_fetch: tokio::sync::Mutex::new(None),
            min_interval,
        }
    }

    /// Whether a JWK set has been loaded.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What tokens are checked against.
    pub fn expectations(&self) -> &Expectations {
        &self.expect
    }

    /// Replaces the keys with those of `set`; JWKs of unknown type or algorithm are skipped.
    pub fn install(&self, set: &JwkSet) {
        let mut map = HashMap::new();
        for jwk in &set.keys {
            if jwk.use_ != "sig" {
                continue;
            }
            let (Some(alg), Some(key)) = (jwk.algorithm(), jwk.decoding_key()) else {
                tracing::warn!(kid = %jwk.kid, alg = %jwk.alg, "skipping a JWK this verifier cannot use");
                continue;
            };
            let validation = auth_protocol::validation(
                alg,
                &self.expect.issuer,
                &self.expect.audience,
                self.expect.leeway,
            );
            map.insert(jwk.kid.clone(), Arc::new(VerifyKey { key, validation }));
        }
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = map;
        self.loaded.store(true, Ordering::Relaxed);
        metrics::counter!("verifier_jwks_fetches_total").increment(1);
    }

    /// Fetches the JWK set now and installs it.
    pub async fn refresh(&self, api: &ApiClient) -> Result<(), Error> {
        let mut last = self.last_fetch.lock().await;
        *last = Some(Instant::now());
        let set = api.jwks().await?;
        self.install(&set);
        Ok(())
    }

    /// The key `kid`; when unknown, refetches the set unless that was done less than the
    /// minimum interval ago. `None` when the key is still unknown.
    pub async fn get(&self, kid: &str, api: &ApiClient) -> Option<Arc<VerifyKey>> {
        if let Some(k) = self.lookup(kid) {
            return Some(k);
        }
        {
            let mut last = self.last_fetch.lock().await;
            // Another check may have refetched while this one waited.
            if let Some(k) = self.lookup(kid) {
                return Some(k);
            }
            if last.is_some_and(|t| t.elapsed() < self.min_interval) {
                return None;
            }
            *last = Some(Instant::now());
            match api.jwks().await {
                Ok(set) => self.install(&set),
                Err(e) => tracing::warn!(error = %e, "JWKS refetch for an unknown kid failed"),
            }
        }
        self.lookup(kid)
    }

    fn lookup(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }
}
