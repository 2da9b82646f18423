//! The cache of verified access tokens: a moka cache from the token's [`TokenKey`] to its
//! [`Identity`], bounded in number (moka's TinyLFU admission and LRU eviction), each entry
//! expiring when its token does (`exp` plus the leeway). A repeated check is one lookup.
//!
//! The key is the first 128 bits of the token's SHA-256 rather than all 256: it halves the
//! key's share of each entry (bench/verifier/RESULTS.md measures memory at 100,000 tokens),
//! and passing a lookup for a cached token with some other string would take a second
//! preimage of 128 bits. Only tokens that verified are inserted, and the keys are uniformly
//! distributed, so the map uses the key's low 64 bits as its hash instead of hashing again.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::clock::now_ms;
use crate::identity::Identity;

/// A token's cache key: the first 128 bits of its SHA-256, so tokens themselves are never kept.
pub type TokenKey = u128;

/// The [`TokenKey`] of a token (SHA-256 by aws-lc-rs).
pub fn token_key(token: &str) -> TokenKey {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_ref()[..16]);
    u128::from_le_bytes(first)
}

/// Hashes a [`TokenKey`] to its own low 64 bits: it is a digest already.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `u128` keys only call `write_u128`; fold anything else in rather than drop it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// Expires an entry when its token expires, leeway included.
struct UntilExp {
    leeway: i64,
}

impl Expiry<TokenKey, Arc<Identity>> for UntilExp {
    fn expire_after_create(
        &self,
        _: &TokenKey,
        identity: &Arc<Identity>,
        _: Instant,
    ) -> Option<Duration> {
        let until_ms = (identity.exp + self.leeway).saturating_mul(1000);
        Some(Duration::from_millis(
            u64::try_from(until_ms - now_ms()).unwrap_or(0),
        ))
    }
}

/// Verified access tokens by [`TokenKey`], at most `capacity` of them, each until its `exp`.
pub struct TokenCache(Cache<TokenKey, Arc<Identity>, BuildHasherDefault<KeyHasher>>);

impl TokenCache {
    /// An empty cache of at most `capacity` tokens, each kept until `exp + leeway` (seconds).
    pub fn new(capacity: u64, leeway: i64) -> Self {
        TokenCache(
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp { leeway })
                .build_with_hasher(BuildHasherDefault::default()),
        )
    }

    /// The cached identity of a token, if any.
    pub fn get(&self, key: TokenKey) -> Option<Arc<Identity>> {
        self.0.get(&key)
    }

    /// Caches a verified token's identity.
    pub fn insert(&self, key: TokenKey, identity: Arc<Identity>) {
        self.0.insert(key, identity);
    }

    /// Runs moka's pending maintenance now: drops expired entries, applies evictions.
    pub fn run_pending_tasks(&self) {
        self.0.run_pending_tasks();
    }

    /// Number of cached tokens (moka's count, exact after [`TokenCache::run_pending_tasks`]).
    pub fn len(&self) -> u64 {
        self.0.entry_count()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now_secs;
    use crate::identity::test_claims;

    fn identity(exp: i64) -> Arc<Identity> {
        let c = test_claims("t", "u", "s", 1, exp);
        Arc::new(Identity::new(&c, "k").unwrap())
    }

    #[test]
    fn keys_are_the_first_half_of_the_sha256() {
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 …
        assert_eq!(
            token_key("abc").to_le_bytes()[..8],
            [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea]
        );
        assert_ne!(token_key("abc"), token_key("abd"));
    }

    #[test]
    fn bounded_in_number() {
        let cache = TokenCache::new(64, 5);
        let exp = now_secs() + 600;
        for i in 0..10_000 {
            cache.insert(token_key(&i.to_string()), identity(exp));
        }
        cache.run_pending_tasks();
        assert!(cache.len() <= 64, "{} entries", cache.len());
        assert!(!cache.is_empty());
    }

    #[test]
    fn entries_live_until_exp_plus_leeway() {
        let cache = TokenCache::new(100, 5);
        let now = now_secs();
        for (name, exp) in [
            ("fresh", now + 60),
            ("in leeway", now - 2),
            ("old", now - 10),
        ] {
            cache.insert(token_key(name), identity(exp));
        }
        assert!(cache.get(token_key("fresh")).is_some());
        assert!(cache.get(token_key("in leeway")).is_some());
        assert!(
            cache.get(token_key("old")).is_none(),
            "expired beyond the leeway"
        );
    }
}
