//! A verified access token as the verifier keeps it: [`Identity`], the claims answers need
//! (`sub`, `tid`, `sid`, roles, `kid`, `iat`, `exp`) in one allocation, checked once to be
//! fit for response headers.

use std::sync::atomic::{AtomicU64, Ordering};

use auth_protocol::AccessClaims;

use crate::error::Error;

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
    /// The [`RevocationSet::generation`] at which this token last passed the revocation and
    /// tenant checks; 0 if it never did.
    ///
    /// [`RevocationSet::generation`]: crate::revocation::RevocationSet::generation
    cleared: AtomicU64,
}

impl Identity {
    /// The identity of a token with these verified claims, signed by `kid`. Fails
    /// ([`Error::InvalidToken`]) when a part is not visible ASCII (it would go into a response
    /// header), `sub`, `tid` or `sid` is empty, or the parts are too long.
    pub(crate) fn new(claims: &AccessClaims, kid: &str) -> Result<Self, Error> {
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
            cleared: AtomicU64::new(0),
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

    /// The revocation-set generation at which this token last passed the revocation and
    /// tenant checks; 0 if it never did.
    pub(crate) fn cleared_at(&self) -> u64 {
        self.cleared.load(Ordering::Relaxed)
    }

    /// Records that this token passed the revocation and tenant checks at `generation`.
    pub(crate) fn clear(&self, generation: u64) {
        self.cleared.store(generation, Ordering::Relaxed);
    }
}

/// Claims for the verifier's unit tests: these `tid`, `sub`, `sid`, `iat` and `exp`, no roles.
#[cfg(test)]
pub(crate) fn test_claims(tid: &str, sub: &str, sid: &str, iat: i64, exp: i64) -> AccessClaims {
    AccessClaims {
        iss: "i".into(),
        aud: "a".into(),
        sub: sub.into(),
        tid: tid.into(),
        sid: sid.into(),
        roles: vec![],
        iat,
        exp,
        jti: "j".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_parts_round_trip() {
        let c = AccessClaims {
            roles: vec!["admin".into(), "member".into()],
            ..test_claims("acme", "user-1", "sess", 1, 2)
        };
        let id = Identity::new(&c, "k1").unwrap();
        assert_eq!(
            (id.sub(), id.tid(), id.sid(), id.roles(), id.kid()),
            ("user-1", "acme", "sess", "admin,member", "k1")
        );
        assert_eq!(id.cleared_at(), 0, "never checked");
        id.clear(3);
        assert_eq!(id.cleared_at(), 3);
        let mut bad = c.clone();
        bad.sub = "a\r\nX-Evil: 1".into();
        assert!(Identity::new(&bad, "k1").is_err());
    }
}
