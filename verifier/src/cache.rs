//! The cache of verified access tokens: a fixed number of shards, each a hash map from the
//! token's SHA-256 to its [`Identity`] under a read-write lock. It replaces moka for this one
//! cache because moka keeps about 300 bytes of bookkeeping per entry (access and write
//! queues, timer-wheel nodes, frequency sketch) and records every read; here an entry costs
//! its 40-byte slot and the identity itself, and a hit is one read lock and one probe.
//!
//! Entries leave when their token has expired (checked on every hit and swept periodically,
//! see [`TokenCache::purge_expired`]) or, when a shard is full, to make room: first the
//! expired ones, then an arbitrary eighth of the shard. Keys are SHA-256 digests, so "arbitrary"
//! is effectively random; an evicted token costs one signature check on its next use.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, RwLock};

use crate::verify::{Identity, TokenHash};

/// Number of shards; a power of two.
const SHARDS: usize = 16;

/// A key that hashes to its own first eight bytes: it is already a SHA-256 digest, and only
/// tokens that verified are ever inserted, so nobody can choose colliding keys.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(TokenHash);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Passes the `u64` a [`Key`] writes through unchanged.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Key`; fold anything else in rather than drop it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<Key, Arc<Identity>, BuildHasherDefault<PassThrough>>;

/// Verified access tokens by SHA-256, bounded in number, each until its `exp`.
pub struct TokenCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
}

impl TokenCache {
    /// An empty cache holding at most about `capacity` entries (rounded up to a multiple of
    /// the shard count; at least one per shard).
    pub fn new(capacity: u64) -> Self {
        let per_shard = usize::try_from(capacity)
            .unwrap_or(usize::MAX)
            .div_ceil(SHARDS)
            .max(1);
        TokenCache {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            per_shard,
        }
    }

    fn shard(&self, key: &TokenHash) -> &RwLock<Shard> {
        // The last byte picks the shard; the first eight are the hash inside it.
        &self.shards[key[31] as usize % SHARDS]
    }

    /// The cached identity of this token, if any (expired or not: the caller decides).
    pub fn get(&self, key: &TokenHash) -> Option<Arc<Identity>> {
        let shard = self.shard(key).read().unwrap_or_else(|p| p.into_inner());
        shard.get(&Key(*key)).cloned()
    }

    /// Caches `identity` under `key`. A full shard first drops the entries expired at `now`
    /// (seconds since the epoch), then, if still full, an arbitrary eighth of itself.
    pub fn insert(&self, key: TokenHash, identity: Arc<Identity>, now: i64) {
        let mut shard = self.shard(&key).write().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&Key(key)) {
            shard.retain(|_, id| id.exp >= now);
            if shard.len() >= self.per_shard {
                let mut evict = (self.per_shard / 8).max(1);
                shard.retain(|_, _| {
                    if evict == 0 {
                        return true;
                    }
                    evict -= 1;
                    false
                });
            }
        }
        shard.insert(Key(key), identity);
    }

    /// Forgets one token.
    pub fn remove(&self, key: &TokenHash) {
        let mut shard = self.shard(key).write().unwrap_or_else(|p| p.into_inner());
        shard.remove(&Key(*key));
    }

    /// Drops every entry whose `exp` is before `cutoff` (seconds since the epoch), and gives
    /// back memory of shards that have shrunk a lot.
    pub fn purge_expired(&self, cutoff: i64) {
        for lock in &*self.shards {
            let mut shard = lock.write().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, id| id.exp >= cutoff);
            if shard.capacity() > 64 && shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit();
            }
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::AccessClaims;

    fn identity(exp: i64) -> Arc<Identity> {
        let c = AccessClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "u".into(),
            tid: "t".into(),
            sid: "s".into(),
            roles: vec![],
            iat: 1,
            exp,
            jti: "j".into(),
        };
        Arc::new(Identity::new(&c, "k").unwrap())
    }

    fn key(i: u32) -> TokenHash {
        crate::verify::hash_token(&i.to_string())
    }

    #[test]
    fn bounded_and_expiring() {
        let cache = TokenCache::new(64);
        for i in 0..10_000 {
            cache.insert(key(i), identity(100 + i64::from(i % 2)), 50);
            assert!(cache.len() <= 64, "{} entries after {i}", cache.len());
        }
        let last = key(9_999);
        assert!(cache.get(&last).is_some(), "the newest entry is kept");
        cache.remove(&last);
        assert!(cache.get(&last).is_none());
        cache.purge_expired(101);
        assert!(!cache.is_empty(), "exp 101 is not before 101");
        cache.purge_expired(102);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_shard_drops_expired_entries_first() {
        let cache = TokenCache::new(16 * 4);
        let keys: Vec<TokenHash> = (0..100_000)
            .map(key)
            .filter(|k| (k[31] as usize).is_multiple_of(SHARDS))
            .take(5)
            .collect();
        for (i, k) in keys[..4].iter().enumerate() {
            cache.insert(*k, identity(if i == 0 { 10 } else { 1_000 }), 5);
        }
        cache.insert(keys[4], identity(1_000), 20);
        assert!(cache.get(&keys[0]).is_none(), "the expired one made room");
        assert!(keys[1..].iter().all(|k| cache.get(k).is_some()));
    }
}
