//! The check itself: a bearer token in, an [`Identity`] or an [`Error`] out. Access tokens
//! (JWTs) are verified once and then served from a moka cache keyed by the SHA-256 of the
//! token, each entry expiring at the token's `exp`; every answer, cached or not, is tested
//! against the revocation set and the feed's staleness. Machine tokens (`mt_…`) are asked of
//! the API's `/introspect` and the answer is cached briefly.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::future::Cache;

use crate::Error;
use crate::client::{ApiClient, Introspection};
use crate::feed::FeedState;
use crate::keys::Keys;
use crate::revocation::{RevocationSet, TokenRef};
use crate::token::{AccessClaims, MACHINE_TOKEN_PREFIX};

/// SHA-256 of a token: the cache key, so tokens themselves are never kept.
pub type TokenHash = [u8; 32];

/// Hashes a token with SHA-256 (aws-lc-rs).
pub fn hash_token(token: &str) -> TokenHash {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A verified access token, reduced to what answers need, in one allocation.
#[derive(Debug)]
pub struct Identity {
    /// `sub`, `tid`, `sid`, comma-joined roles and `kid`, one after the other.
    buf: Box<str>,
    ends: [u32; 5],
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

impl Identity {
    fn new(claims: &AccessClaims, kid: &str) -> Result<Self, Error> {
        let roles = claims.roles.join(",");
        let parts = [&*claims.sub, &*claims.tid, &*claims.sid, &*roles, kid];
        let mut buf = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 5];
        for (i, p) in parts.iter().enumerate() {
            // Everything here goes into response headers: visible ASCII only.
            if !p.bytes().all(|b| (0x20..0x7f).contains(&b)) || (i < 3 && p.is_empty()) {
                return Err(Error::InvalidToken("malformed claims"));
            }
            buf.push_str(p);
            ends[i] =
                u32::try_from(buf.len()).map_err(|_| Error::InvalidToken("claims too large"))?;
        }
        Ok(Identity {
            buf: buf.into_boxed_str(),
            ends,
            iat: claims.iat,
            exp: claims.exp,
        })
    }

    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.buf[start..self.ends[i] as usize]
    }

    /// User id.
    pub fn sub(&self) -> &str {
        self.part(0)
    }
    /// Tenant slug.
    pub fn tid(&self) -> &str {
        self.part(1)
    }
    /// Session id.
    pub fn sid(&self) -> &str {
        self.part(2)
    }
    /// Roles, comma-separated.
    pub fn roles(&self) -> &str {
        self.part(3)
    }
    /// Key id that signed the token.
    pub fn kid(&self) -> &str {
        self.part(4)
    }
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub enum Checked {
    /// A user's access token.
    Access(Arc<Identity>),
    /// A machine token, as the API described it.
    Machine(Arc<Introspection>),
}

struct ExpireAtExp;

impl Expiry<TokenHash, Arc<Identity>> for ExpireAtExp {
    fn expire_after_create(
        &self,
        _key: &TokenHash,
        value: &Arc<Identity>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let left = value.exp.saturating_sub(now_secs()).max(0);
        Some(Duration::from_secs(left as u64))
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
    cache: Cache<TokenHash, Arc<Identity>>,
    machine: Cache<TokenHash, Arc<Introspection>>,
    tenants: Vec<String>,
    leeway: i64,
    started: Instant,
}

impl Verifier {
    /// A verifier with empty caches; keys arrive later through [`Verifier::keys`].
    pub fn new(
        api: ApiClient,
        feed: Arc<FeedState>,
        tenants: Vec<String>,
        cache_capacity: u64,
        machine_ttl: Duration,
        leeway: u64,
    ) -> Self {
        Verifier {
            keys: OnceLock::new(),
            revocations: Arc::default(),
            feed,
            api,
            cache: Cache::builder()
                .max_capacity(cache_capacity)
                .expire_after(ExpireAtExp)
                .build(),
            machine: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(machine_ttl)
                .build(),
            tenants: tenants.into_iter().filter(|t| !t.is_empty()).collect(),
            leeway: leeway as i64,
            started: Instant::now(),
        }
    }

    /// Number of cached access tokens (approximate, as moka counts).
    pub fn cached(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn tenant_ok(&self, tid: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tid)
    }

    /// Checks a bearer token: signature or introspection, claims, revocation, staleness,
    /// tenant. Never panics on any input.
    pub async fn check(&self, token: &str) -> Result<Checked, Error> {
        if token.is_empty() || token.len() > 16 * 1024 {
            return Err(Error::InvalidToken("malformed token"));
        }
        if self.feed.stale() {
            return Err(Error::Stale);
        }
        let hash = hash_token(token);
        if token.starts_with(MACHINE_TOKEN_PREFIX) {
            return self.check_machine(token, hash).await;
        }
        let identity = match self.cache.get(&hash).await {
            Some(id) => {
                metrics::counter!("verifier_cache_hits_total").increment(1);
                if id.exp + self.leeway < now_secs() {
                    self.cache.invalidate(&hash).await;
                    return Err(Error::InvalidToken("token expired"));
                }
                id
            }
            None => {
                metrics::counter!("verifier_cache_misses_total").increment(1);
                let id = Arc::new(self.verify_jwt(token).await?);
                self.cache.insert(hash, id.clone()).await;
                id
            }
        };
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
        if !self.tenant_ok(identity.tid()) {
            return Err(Error::TenantNotAccepted);
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

    async fn check_machine(&self, token: &str, hash: TokenHash) -> Result<Checked, Error> {
        let answer = match self.machine.get(&hash).await {
            Some(a) => a,
            None => {
                let a = Arc::new(self.api.introspect(token).await.inspect_err(|e| {
                    tracing::warn!(error = %e, "machine-token introspection failed");
                })?);
                self.machine.insert(hash, a.clone()).await;
                a
            }
        };
        if !answer.active {
            return Err(Error::InvalidToken("inactive token"));
        }
        if let Some(id) = &answer.client_id
            && self.revocations.revokes_api_token(id)
        {
            self.machine.invalidate(&hash).await;
            return Err(Error::Revoked);
        }
        if answer.exp.is_some_and(|exp| exp + self.leeway < now_secs()) {
            return Err(Error::InvalidToken("token expired"));
        }
        if !self.tenant_ok(answer.tid.as_deref().unwrap_or("default")) {
            return Err(Error::TenantNotAccepted);
        }
        Ok(Checked::Machine(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_parts_round_trip() {
        let c = AccessClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "user-1".into(),
            tid: "acme".into(),
            sid: "sess".into(),
            roles: vec!["admin".into(), "member".into()],
            iat: 1,
            exp: 2,
            jti: "j".into(),
        };
        let id = Identity::new(&c, "k1").unwrap();
        assert_eq!(
            (id.sub(), id.tid(), id.sid(), id.roles(), id.kid()),
            ("user-1", "acme", "sess", "admin,member", "k1")
        );
        let mut bad = c.clone();
        bad.sub = "a\r\nX-Evil: 1".into();
        assert!(Identity::new(&bad, "k1").is_err());
    }
}
