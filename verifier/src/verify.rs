//! The check itself: a bearer token in, an [`Identity`] or an [`Error`] out. Access tokens
//! (JWTs) are verified once and then served from a [`TokenCache`] keyed by a hash of the
//! token, each entry good until the token's `exp`; every answer, cached or not, is tested
//! against the revocation set and the feed's staleness. Machine tokens (`mt_…`) are asked of
//! the API's `/introspect` and the answer is cached briefly (moka, with a time to live);
//! deleted machine tokens (`api_token` entries) and deleted tenants (`tenant` entries) are
//! refused whether the answer is cached or not.
//!
//! The tenants whose tokens are accepted are fixed once at start ([`Verifier::accept_tenants`],
//! after the verifier's own API token is checked); until then every token is refused (401, "cannot
//! be checked now").
//!
//! [`Verifier::check`] is two halves, so that a server can answer a cached token without a
//! future: [`Verifier::check_cached`], the synchronous hot path, computes the token's cache key
//! once and answers from the cache, or hands the key to [`Verifier::check_uncached`], the
//! asynchronous rest (signature check or introspection). A miss hashes the token once and
//! probes the cache once.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use auth_protocol::{AccessClaims, Introspection, MACHINE_TOKEN_PREFIX};
use metrics::Counter;
use moka::future::Cache;

use crate::cache::{TokenCache, TokenKey, token_key};
use crate::client::ApiClient;
use crate::clock::now_secs;
use crate::error::Error;
use crate::feed::FeedState;
use crate::identity::Identity;
use crate::keys::Keys;
use crate::revocation::{RevocationSet, TokenRef};

/// What [`Verifier::check_cached`] could tell without waiting.
#[derive(Debug)]
pub enum Lookup {
    /// The answer: a refusal, or a cached access token that passed the revocation and tenant
    /// checks.
    Answered(Result<Checked, Error>),
    /// The token must be verified or introspected: [`Verifier::check_uncached`] with this key.
    Miss(TokenKey),
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub enum Checked {
    /// A user's access token.
    Access(Arc<Identity>),
    /// A machine token, as the API described it.
    Machine(Arc<Introspection>),
}

/// Everything a check needs; one per process, shared by the HTTP handlers.
pub struct Verifier {
    /// Keys, set once discovery has told the issuer.
    pub keys: OnceLock<Keys>,
    /// Revocation entries in force.
    pub revocations: Arc<RevocationSet>,
    /// Liveness of the feed.
    pub feed: Arc<FeedState>,
    /// The API.
    pub api: ApiClient,
    cache: TokenCache,
    machine: Cache<TokenKey, Arc<Introspection>>,
    hits: Counter,
    misses: Counter,
    /// Accepted tenants (empty: every tenant); unset until start-up has checked the API token.
    tenants: OnceLock<Vec<String>>,
    leeway: i64,
    started: Instant,
}

impl Verifier {
    /// A verifier with empty caches; keys arrive later through [`Verifier::keys`], the
    /// accepted tenants through [`Verifier::accept_tenants`]. Its cache counters go to the
    /// metrics recorder installed when it is made.
    pub fn new(
        api: ApiClient,
        feed: Arc<FeedState>,
        cache_capacity: u64,
        machine_ttl: Duration,
        leeway: u64,
    ) -> Self {
        Verifier {
            keys: OnceLock::new(),
            revocations: Arc::default(),
            feed,
            api,
            cache: TokenCache::new(cache_capacity, leeway as i64),
            machine: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(machine_ttl)
                .build(),
            tenants: OnceLock::new(),
            leeway: leeway as i64,
            started: Instant::now(),
            hits: metrics::counter!("verifier_cache_hits_total"),
            misses: metrics::counter!("verifier_cache_misses_total"),
        }
    }

    /// Number of cached access tokens.
    pub fn cached(&self) -> u64 {
        self.cache.len()
    }

    /// Drops the cached tokens that have expired (beyond the leeway).
    pub fn purge_expired(&self) {
        self.cache.run_pending_tasks();
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Fixes the tenants whose tokens are accepted (slugs; empty: every tenant). Only the first
    /// call counts; it answers whether this one was it.
    pub fn accept_tenants(&self, tenants: Vec<String>) -> bool {
        self.tenants
            .set(tenants.into_iter().filter(|t| !t.is_empty()).collect())
            .is_ok()
    }

    /// The accepted tenants (empty: every tenant), once fixed.
    pub fn accepted_tenants(&self) -> Option<&[String]> {
        self.tenants.get().map(Vec::as_slice)
    }

    fn tenant_ok(&self, tid: &str) -> Result<(), Error> {
        match self.tenants.get() {
            None => Err(Error::Upstream(
                "the verifier's own API token is not checked yet".into(),
            )),
            Some(t) if t.is_empty() || t.iter().any(|t| t == tid) => Ok(()),
            Some(_) => Err(Error::TenantNotAccepted),
        }
    }

    /// Checks a bearer token: signature or introspection, claims, revocation, staleness,
    /// tenant. Never panics on any input.
    pub async fn check(&self, token: &str) -> Result<Checked, Error> {
        match self.check_cached(token) {
            Lookup::Answered(answer) => answer,
            Lookup::Miss(key) => self.check_uncached(token, key).await,
        }
    }

    /// The part of [`Verifier::check`] that needs nothing asynchronous: refuses a malformed
    /// token or a stale feed, computes the token's [`TokenKey`] (once), and answers an access
    /// token found in the cache. Otherwise (an access token not cached, any machine token)
    /// [`Lookup::Miss`] hands the key on to [`Verifier::check_uncached`].
    pub fn check_cached(&self, token: &str) -> Lookup {
        if token.is_empty() || token.len() > 16 * 1024 {
            return Lookup::Answered(Err(Error::InvalidToken("malformed token")));
        }
        if self.feed.stale() {
            return Lookup::Answered(Err(Error::Stale));
        }
        let key = token_key(token);
        if token.starts_with(MACHINE_TOKEN_PREFIX) {
            return Lookup::Miss(key);
        }
        // moka drops an entry when its token expires (leeway included), to the millisecond.
        match self.cache.get(key) {
            Some(identity) => {
                self.hits.increment(1);
                Lookup::Answered(self.admit(identity))
            }
            None => Lookup::Miss(key),
        }
    }

    /// The rest of [`Verifier::check`] after [`Verifier::check_cached`] missed with `key`
    /// (the [`TokenKey`] of `token`): verifies an access token and caches it, or introspects
    /// a machine token (its answer cached briefly).
    pub async fn check_uncached(&self, token: &str, key: TokenKey) -> Result<Checked, Error> {
        if token.starts_with(MACHINE_TOKEN_PREFIX) {
            return self.check_machine(token, key).await;
        }
        self.misses.increment(1);
        let identity = Arc::new(self.verify_jwt(token).await?);
        self.cache.insert(key, identity.clone());
        self.admit(identity)
    }

    /// Revocation and tenant checks of a verified access token, skipped when the token
    /// passed them already and the revocation set has not changed since.
    fn admit(&self, identity: Arc<Identity>) -> Result<Checked, Error> {
        // Read before checking: a change after this read bumps the generation again.
        let generation = self.revocations.generation();
        if identity.cleared_at() != generation {
            let t = TokenRef {
                tid: identity.tid(),
                sub: identity.sub(),
                sid: identity.sid(),
                iat: identity.iat,
                kid: identity.kid(),
            };
            if self.revocations.revokes(t) {
                return Err(Error::Revoked);
            }
            self.tenant_ok(identity.tid())?;
            identity.clear(generation);
        }
        Ok(Checked::Access(identity))
    }

    async fn verify_jwt(&self, token: &str) -> Result<Identity, Error> {
        let keys = self
            .keys
            .get()
            .ok_or(Error::Upstream("signing keys not loaded yet".into()))?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Error::InvalidToken("malformed token"))?;
        let kid = header.kid.ok_or(Error::InvalidToken("no key id"))?;
        let key = keys
            .get(&kid, &self.api)
            .await
            .ok_or(Error::InvalidToken("unknown signing key"))?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &key.validation).map_err(
            |e| {
                use jsonwebtoken::errors::ErrorKind as K;
                Error::InvalidToken(match e.kind() {
                    K::ExpiredSignature => "token expired",
                    K::ImmatureSignature => "token not yet valid",
                    K::InvalidIssuer => "wrong issuer",
                    K::InvalidAudience => "wrong audience",
                    K::InvalidSignature => "bad signature",
                    K::InvalidAlgorithm => "algorithm not allowed for this key",
                    K::MissingRequiredClaim(_) => "missing claim",
                    _ => "malformed token",
                })
            },
        )?;
        Identity::new(&data.claims, &kid)
    }

    async fn check_machine(&self, token: &str, key: TokenKey) -> Result<Checked, Error> {
        let answer = match self.machine.get(&key).await {
            Some(a) => a,
            None => {
                let a = Arc::new(self.api.introspect(token).await.inspect_err(|e| {
                    tracing::warn!(error = %e, "machine-token introspection failed");
                })?);
                self.machine.insert(key, a.clone()).await;
                a
            }
        };
        if !answer.active {
            return Err(Error::InvalidToken("inactive token"));
        }
        let tid = answer.tid.as_deref().unwrap_or("default");
        // Deleted token, or deleted tenant (its cut-off covers the token's `iat`): the cached
        // answer must not outlive either.
        if answer
            .client_id
            .as_deref()
            .is_some_and(|id| self.revocations.revokes_api_token(id))
            || self.revocations.revokes_tenant_token(tid, answer.iat)
        {
            self.machine.invalidate(&key).await;
            return Err(Error::Revoked);
        }
        if answer.exp.is_some_and(|exp| exp + self.leeway < now_secs()) {
            return Err(Error::InvalidToken("token expired"));
        }
        self.tenant_ok(tid)?;
        Ok(Checked::Machine(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::test_claims;

    /// A verifier whose API is unreachable: only cached answers can pass.
    fn offline() -> Verifier {
        let api = ApiClient::new("http://127.0.0.1:9", None).unwrap();
        Verifier::new(
            api,
            Arc::new(FeedState::new(Duration::from_secs(30))),
            100,
            Duration::from_secs(30),
            5,
        )
    }

    #[test]
    fn the_synchronous_half_answers_or_hands_the_key_on() {
        let v = offline();
        let answered_stale = matches!(v.check_cached("a.b.c"), Lookup::Answered(Err(Error::Stale)));
        assert!(answered_stale, "the feed never synced");

        let v = Verifier {
            feed: Arc::new(FeedState::synced(Duration::from_secs(30))),
            ..offline()
        };
        assert!(v.accept_tenants(vec![]));
        for malformed in ["", &"x".repeat(16 * 1024 + 1)] {
            assert!(matches!(
                v.check_cached(malformed),
                Lookup::Answered(Err(Error::InvalidToken("malformed token")))
            ));
        }
        for token in ["a.b.c", "mt_machine"] {
            let key = match v.check_cached(token) {
                Lookup::Miss(key) => key,
                other => panic!("{token}: {other:?}"),
            };
            assert_eq!(key, token_key(token), "{token}: the key to pass on");
        }
        let claims = test_claims("t", "u", "s", 1, now_secs() + 60);
        let identity = Arc::new(Identity::new(&claims, "k").unwrap());
        v.cache.insert(token_key("a.b.c"), identity);
        assert!(matches!(
            v.check_cached("a.b.c"),
            Lookup::Answered(Ok(Checked::Access(id))) if id.sid() == "s"
        ));
    }

    #[tokio::test]
    async fn a_cleared_token_is_checked_again_when_the_set_changes() {
        use auth_protocol::RevocationEntry;
        let v = offline();
        let claims = |sid: &str| test_claims("t", "u", sid, 1, now_secs() + 60);
        assert!(
            matches!(
                v.admit(Arc::new(Identity::new(&claims("s0"), "k").unwrap())),
                Err(Error::Upstream(_))
            ),
            "nothing is accepted before the tenants are fixed"
        );
        assert!(v.accept_tenants(vec![]));
        assert!(!v.accept_tenants(vec!["other".into()]), "fixed once");
        let a = Arc::new(Identity::new(&claims("s1"), "k").unwrap());
        let b = Arc::new(Identity::new(&claims("s2"), "k").unwrap());
        assert!(v.admit(a.clone()).is_ok());
        assert!(v.admit(b.clone()).is_ok());
        let revoke = |seq, sid: &str| RevocationEntry {
            seq,
            ..RevocationEntry::session("t", sid, now_secs() + 60)
        };
        v.revocations.apply(revoke(1, "s1"));
        assert!(matches!(v.admit(a.clone()), Err(Error::Revoked)));
        assert!(v.admit(b.clone()).is_ok());
        assert!(matches!(v.admit(a), Err(Error::Revoked)), "stays revoked");
        v.revocations.apply(revoke(2, "s2"));
        assert!(matches!(v.admit(b), Err(Error::Revoked)));
    }

    #[tokio::test]
    async fn a_cached_machine_token_is_refused_once_its_tenant_is_cut_off() {
        use auth_protocol::RevocationEntry;
        let v = offline();
        assert!(v.accept_tenants(vec!["acme".into()]));
        let answer = |tid: &str, iat: i64| {
            Introspection::machine_token(format!("id-{tid}-{iat}"), tid, "admin", iat)
        };
        let (old, new, other) = ("mt_old", "mt_new", "mt_other");
        for (token, a) in [
            (old, answer("acme", 100)),
            (new, answer("acme", 201)),
            (other, answer("beta", 100)),
        ] {
            v.machine.insert(token_key(token), Arc::new(a)).await;
        }
        // `check` would refuse everything here (the feed never synced): the machine part alone.
        let check = |token: &'static str| v.check_machine(token, token_key(token));
        assert!(matches!(check(old).await, Ok(Checked::Machine(_))));
        assert!(matches!(check(other).await, Err(Error::TenantNotAccepted)));
        v.revocations.apply(RevocationEntry {
            seq: 1,
            ..RevocationEntry::tenant("acme", 200, now_secs() + 60)
        });
        assert!(matches!(check(old).await, Err(Error::Revoked)));
        assert!(
            v.machine.get(&token_key(old)).await.is_none(),
            "the cached answer is dropped"
        );
        assert!(
            matches!(check(new).await, Ok(Checked::Machine(_))),
            "issued after the cut-off"
        );
    }
}
