//! The machine side: who may read the revocation feed and introspect tokens (a `verify`
//! token, bound to its tenant unless it holds `platform`), the feed as such a reader sees it,
//! and RFC 7662 introspection answers.

use auth_protocol::{
    Introspection, MACHINE_TOKEN_PREFIX, RevocationEntry, RevocationKind, RevocationList,
};
use tokio::sync::broadcast;

use super::feed::LOOKBACK;
use super::{Auth, Error, Result};
use crate::domain::{Scope, now_ms};
use crate::store::StoreError;

/// What a reader of the machine endpoints (introspection, the revocation feed) may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// Every tenant: a `verify` token that holds `platform` too, or a tokenless loopback
    /// caller under `AUTH_INTERNAL_LOOPBACK_NO_TOKEN`.
    Everything,
    /// One tenant, by slug: a `verify` token of that tenant.
    Tenant(String),
}

impl Reader {
    /// Whether tokens of the tenant `slug` may be described to this reader.
    pub fn sees(&self, slug: &str) -> bool {
        match self {
            Reader::Everything => true,
            Reader::Tenant(own) => own == slug,
        }
    }

    /// Whether this feed entry is for this reader: its tenant's, or a signing key's (keys
    /// sign for every tenant).
    pub fn sees_entry(&self, entry: &RevocationEntry) -> bool {
        // `session_created` entries are for the API's own subscribers, not for verifiers.
        if entry.kind == RevocationKind::SessionCreated {
            return false;
        }
        entry.kind == RevocationKind::Key || self.sees(&entry.tenant)
    }
}

impl Auth {
    /// The reader a machine token makes of the caller of `/introspect` and the revocation
    /// feed: `UNAUTHENTICATED` unless it is a machine token, `FORBIDDEN` without scope
    /// `verify`.
    pub async fn verify_reader(&self, bearer: &str) -> Result<Reader> {
        if !bearer.starts_with(MACHINE_TOKEN_PREFIX) {
            return Err(Error::Unauthenticated(
                "a machine token with scope verify is needed",
            ));
        }
        let token = self.machine_token(bearer).await?;
        if !token.scopes.contains(&Scope::Verify) {
            return Err(Error::Forbidden(
                "a token with scope verify is needed".into(),
            ));
        }
        if token.scopes.contains(&Scope::Platform) {
            return Ok(Reader::Everything);
        }
        let tenant = self.store.tenant_by_id(&token.tenant_id).await?;
        Ok(Reader::Tenant(tenant.slug))
    }

    /// Every feed entry in force that `reader` sees, with the cursor to resume the stream
    /// from. The cursor is read first: an entry added between the two reads is listed and
    /// resumed past; one that commits later with a smaller seq reaches the stream through
    /// its look-back.
    pub async fn revocation_list(&self, reader: &Reader) -> Result<RevocationList> {
        // The low-water mark before the list: every seq up to it had committed, so is listed.
        let complete_to = self.feed.complete_to();
        let cursor = self.store.revocation_cursor().await?;
        let mut entries = self.store.revocations().await?;
        let cursor = entries.iter().map(|e| e.seq).max().unwrap_or(0).max(cursor);
        entries.retain(|entry| reader.sees_entry(entry));
        Ok(RevocationList {
            cursor,
            entries,
            complete_to: complete_to.min(cursor),
        })
    }

    /// What a stream resuming after `after` sends first (the entries `reader` sees with a
    /// larger seq, and every one written in the last [`LOOKBACK`] whatever its seq but after
    /// `complete_to`, the low-water mark of the list the reader resumes from, since on
    /// PostgreSQL a smaller seq may have committed since), and the live entries to follow,
    /// subscribed before the backlog is read so that nothing falls between the two. Live
    /// entries are passed on whatever their seq: the poller passes each on once, when it
    /// first sees it committed; readers apply an entry twice without harm.
    pub async fn follow_revocations(
        &self,
        reader: &Reader,
        after: i64,
        complete_to: i64,
    ) -> Result<(Vec<RevocationEntry>, broadcast::Receiver<RevocationEntry>)> {
        let live = self.feed.subscribe();
        let lookback_from = now_ms() - LOOKBACK.as_millis() as i64;
        let mut backlog = self
            .store
            .revocations_since(after, lookback_from, complete_to)
            .await?;
        backlog.retain(|entry| reader.sees_entry(entry));
        Ok((backlog, live))
    }

    /// The RFC 7662 answer for `token`, as `reader` may see it: a token of a tenant the reader
    /// does not see is as inactive as a forged one.
    pub async fn introspect(&self, reader: &Reader, token: &str) -> Result<Introspection> {
        let inactive = Introspection::inactive();
        let store = &self.store;
        if token.starts_with(MACHINE_TOKEN_PREFIX) {
            let found = match self.machine_token(token).await {
                Err(Error::Unauthenticated(_)) => return Ok(inactive),
                other => other?,
            };
            let tenant = store.tenant_by_id(&found.tenant_id).await?;
            if !reader.sees(&tenant.slug) {
                return Ok(inactive);
            }
            let scope: Vec<&str> = found.scopes.iter().map(|s| s.as_str()).collect();
            let mut answer = Introspection::machine_token(
                found.id,
                tenant.slug,
                scope.join(" "),
                found.created_at / 1000,
            );
            // An expiring token says when, so that no cache keeps it past then.
            answer.exp = found.expires_at.map(|at| at / 1000);
            return Ok(answer);
        }
        let Ok(claims) = self.verify_access_token(token).await else {
            return Ok(inactive);
        };
        if !reader.sees(&claims.tid) {
            return Ok(inactive);
        }
        let tenant = match store.tenant_by_slug(&claims.tid).await {
            Err(StoreError::NotFound) => return Ok(inactive),
            other => other?,
        };
        let active = match store.session(&tenant.id, &claims.sid).await {
            Ok(session) => session.is_active(now_ms()) && session.user_id == claims.sub,
            Err(StoreError::NotFound) => false,
            Err(error) => return Err(error.into()),
        };
        if !active {
            return Ok(inactive);
        }
        Ok(Introspection::access_token(&claims))
    }
}
