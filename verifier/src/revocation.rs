//! The revocation set: the entries of the API's feed, indexed so that checking a token is a
//! few hash look-ups under a read lock (tenant → sessions / users, tenant cut-offs, keys,
//! machine tokens). Entries are dropped once their `expires_at` has passed.
//!
//! Every change bumps a generation number, so a cached token that passed the check at one
//! generation need not be checked again until the set changes (see
//! [`RevocationSet::generation`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use auth_protocol::{RevocationEntry, RevocationKind, RevocationList};
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct TenantIndex {
    /// Revoked session ids.
    sessions: HashSet<String>,
    /// User id → highest `iat` cut-off.
    users: HashMap<String, i64>,
}

#[derive(Debug, Default)]
struct Index {
    entries: BTreeMap<i64, RevocationEntry>,
    cursor: i64,
    tenants: HashMap<String, TenantIndex>,
    /// Tenant slug → highest `iat` cut-off for the whole tenant.
    tenant_cutoffs: HashMap<String, i64>,
    keys: HashSet<String>,
    api_tokens: HashSet<String>,
}

impl Index {
    fn add(&mut self, e: &RevocationEntry) {
        let cutoff = e.iat_cutoff.unwrap_or(i64::MAX);
        match e.kind {
            RevocationKind::Session => {
                self.tenants
                    .entry(e.tenant.clone())
                    .or_default()
                    .sessions
                    .insert(e.id.clone());
            }
            RevocationKind::User => {
                let users = &mut self.tenants.entry(e.tenant.clone()).or_default().users;
                let c = users.entry(e.id.clone()).or_insert(cutoff);
                *c = (*c).max(cutoff);
            }
            RevocationKind::Tenant => {
                let c = self.tenant_cutoffs.entry(e.id.clone()).or_insert(cutoff);
                *c = (*c).max(cutoff);
            }
            RevocationKind::Key => {
                self.keys.insert(e.id.clone());
            }
            RevocationKind::ApiToken => {
                self.api_tokens.insert(e.id.clone());
            }
            // Not a revocation (the API does not send these to verifiers): nothing to apply.
            RevocationKind::SessionCreated => {}
        }
    }

    fn rebuild(entries: BTreeMap<i64, RevocationEntry>, cursor: i64) -> Index {
        let mut index = Index {
            cursor,
            ..Index::default()
        };
        for e in entries.values() {
            index.add(e);
        }
        index.entries = entries;
        index
    }
}

/// What a check needs to know of a token to test it against the set.
#[derive(Debug, Clone, Copy)]
pub struct TokenRef<'a> {
    /// Tenant slug (`tid`).
    pub tid: &'a str,
    /// User id (`sub`).
    pub sub: &'a str,
    /// Session id (`sid`).
    pub sid: &'a str,
    /// Issued at.
    pub iat: i64,
    /// Key id of the signature.
    pub kid: &'a str,
}

/// The revocation entries in force, shared by the feed (writer) and the checks (readers).
#[derive(Debug)]
pub struct RevocationSet {
    inner: RwLock<Index>,
    /// Bumped under the write lock after every change; starts at 1 so that 0 can mean
    /// "never checked".
    generation: AtomicU64,
    /// Notified when a `key` entry arrives.
    keys_revoked: Notify,
}

impl Default for RevocationSet {
    fn default() -> Self {
        RevocationSet {
            inner: RwLock::default(),
            generation: AtomicU64::new(1),
            keys_revoked: Notify::new(),
        }
    }
}

impl RevocationSet {
    /// Whether an entry revokes this access token (same rules as
    /// [`RevocationEntry::revokes`], through the indexes).
    pub fn revokes(&self, t: TokenRef<'_>) -> bool {
        let idx = self.inner.read().unwrap_or_else(|p| p.into_inner());
        if idx.keys.contains(t.kid) {
            return true;
        }
        if idx.tenant_cutoffs.get(t.tid).is_some_and(|&c| t.iat <= c) {
            return true;
        }
        if let Some(tenant) = idx.tenants.get(t.tid) {
            if tenant.sessions.contains(t.sid) {
                return true;
            }
            if tenant.users.get(t.sub).is_some_and(|&c| t.iat <= c) {
                return true;
            }
        }
        false
    }

    /// The set's generation: it changes after every change of the set, never back. A token
    /// that [`RevocationSet::revokes`] cleared after this was read stays cleared while it is
    /// unchanged: read it first, then check, then remember the value read.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the machine token with this id has been deleted.
    pub fn revokes_api_token(&self, id: &str) -> bool {
        let idx = self.inner.read().unwrap_or_else(|p| p.into_inner());
        idx.api_tokens.contains(id)
    }

    /// Whether a `tenant` entry cuts off a machine token of tenant `tid` issued at `iat`
    /// (seconds; `None` when the API's answer has none): the tenant's highest cut-off is at or
    /// after `iat`, or the entry has no cut-off, or `iat` is unknown. Same rule as
    /// [`RevocationEntry::revokes_machine`] for `tenant` entries.
    ///
    /// [`RevocationEntry::revokes_machine`]: crate::token::RevocationEntry::revokes_machine
    pub fn revokes_tenant_token(&self, tid: &str, iat: Option<i64>) -> bool {
        let idx = self.inner.read().unwrap_or_else(|p| p.into_inner());
        idx.tenant_cutoffs
            .get(tid)
            .is_some_and(|&cutoff| iat.is_none_or(|iat| iat <= cutoff))
    }

    /// Replaces the whole set with a freshly loaded list.
    pub fn replace(&self, list: RevocationList) {
        let entries = list.entries.into_iter().map(|e| (e.seq, e)).collect();
        let index = Index::rebuild(entries, list.cursor);
        let mut idx = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let new_key = index.keys.iter().any(|k| !idx.keys.contains(k));
        *idx = index;
        self.bump();
        if new_key {
            self.keys_revoked.notify_one();
        }
    }

    /// Adds one streamed entry and advances the cursor.
    pub fn apply(&self, entry: RevocationEntry) {
        let mut idx = self.inner.write().unwrap_or_else(|p| p.into_inner());
        idx.add(&entry);
        idx.cursor = idx.cursor.max(entry.seq);
        let key = entry.kind == RevocationKind::Key;
        idx.entries.insert(entry.seq, entry);
        self.bump();
        if key {
            self.keys_revoked.notify_one();
        }
    }

    /// Resolves once a signing key has been revoked since the last call (the API has rotated
    /// to a new key then, which the JWK set should be fetched for).
    pub async fn key_revoked(&self) {
        self.keys_revoked.notified().await;
    }

    /// The highest `seq` seen: where to resume the stream.
    pub fn cursor(&self) -> i64 {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).cursor
    }

    /// Number of entries in force.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the entries whose `expires_at` is before `now` (seconds since the epoch).
    pub fn prune(&self, now: i64) {
        let mut idx = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if idx.entries.values().all(|e| e.expires_at >= now) {
            return;
        }
        let entries = std::mem::take(&mut idx.entries)
            .into_iter()
            .filter(|(_, e)| e.expires_at >= now)
            .collect();
        let cursor = idx.cursor;
        *idx = Index::rebuild(entries, cursor);
        self.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::test_claims;
    use auth_protocol::AccessClaims;

    fn entry(
        seq: i64,
        kind: RevocationKind,
        tenant: &str,
        id: &str,
        cut: Option<i64>,
    ) -> RevocationEntry {
        RevocationEntry {
            seq,
            kind,
            tenant: tenant.into(),
            id: id.into(),
            iat_cutoff: cut,
            expires_at: 1_000,
        }
    }

    fn claims(tid: &str, sub: &str, sid: &str, iat: i64) -> AccessClaims {
        test_claims(tid, sub, sid, iat, iat + 900)
    }

    #[test]
    fn index_agrees_with_the_entry_rules() {
        let entries = vec![
            entry(1, RevocationKind::Session, "t1", "s1", None),
            entry(2, RevocationKind::User, "t1", "u2", Some(100)),
            entry(3, RevocationKind::Tenant, "t3", "t3", Some(50)),
            entry(4, RevocationKind::Key, "t1", "k4", None),
            entry(5, RevocationKind::ApiToken, "t1", "m5", None),
            entry(6, RevocationKind::User, "t1", "u2", Some(80)),
            // A created session revokes nothing, even the session it names.
            entry(7, RevocationKind::SessionCreated, "t1", "s7", None),
        ];
        let set = RevocationSet::default();
        set.replace(RevocationList {
            cursor: 6,
            entries: entries.clone(),
            complete_to: 0,
        });
        let cases = [
            claims("t1", "u1", "s1", 10),
            claims("t2", "u1", "s1", 10),
            claims("t1", "u2", "s9", 100),
            claims("t1", "u2", "s9", 101),
            claims("t2", "u2", "s9", 10),
            claims("t3", "u", "s", 50),
            claims("t3", "u", "s", 51),
            claims("t1", "u7", "s7", 10),
        ];
        assert!(!entries[6].revokes(&cases[7], "k1"));
        for kid in ["k1", "k4"] {
            for c in &cases {
                let expected = entries.iter().any(|e| e.revokes(c, kid));
                let got = set.revokes(TokenRef {
                    tid: &c.tid,
                    sub: &c.sub,
                    sid: &c.sid,
                    iat: c.iat,
                    kid,
                });
                assert_eq!(got, expected, "{c:?} {kid}");
            }
        }
        assert!(set.revokes_api_token("m5"));
        assert!(!set.revokes_api_token("m6"));
        assert_eq!(set.cursor(), 6);
    }

    #[test]
    fn tenant_entries_cut_off_machine_tokens_as_the_entry_rules_say() {
        let entries = vec![
            entry(1, RevocationKind::Tenant, "gone", "gone", Some(100)),
            entry(2, RevocationKind::Tenant, "wiped", "wiped", None),
            entry(3, RevocationKind::ApiToken, "t1", "m3", None),
            entry(4, RevocationKind::Session, "t1", "s1", None),
            entry(5, RevocationKind::User, "t1", "u1", Some(100)),
            entry(6, RevocationKind::Key, "t1", "k1", None),
            entry(7, RevocationKind::Tenant, "gone", "gone", Some(50)),
        ];
        let set = RevocationSet::default();
        set.replace(RevocationList {
            cursor: 7,
            entries: entries.clone(),
            complete_to: 0,
        });
        let cases = [
            ("m1", "gone", Some(99)),
            ("m1", "gone", Some(100)),
            ("m1", "gone", Some(101)),
            ("m1", "gone", None),
            ("m1", "wiped", Some(i64::MAX)),
            ("m1", "t1", Some(1)),
            ("m1", "t1", None),
            ("m3", "t1", Some(1)),
            // Ids of other kinds' entries are no machine-token cut-offs.
            ("s1", "t1", Some(1)),
            ("u1", "t1", Some(1)),
            ("k1", "t1", Some(1)),
        ];
        for (id, tid, iat) in cases {
            let expected = entries.iter().any(|e| e.revokes_machine(id, tid, iat));
            let got = set.revokes_api_token(id) || set.revokes_tenant_token(tid, iat);
            assert_eq!(got, expected, "{id} {tid} {iat:?}");
        }
        assert!(
            set.revokes_tenant_token("gone", Some(100)),
            "at the cut-off"
        );
        assert!(!set.revokes_tenant_token("gone", Some(101)), "issued after");
        assert!(set.revokes_tenant_token("gone", None), "no iat: covered");
        assert!(
            set.revokes_tenant_token("wiped", Some(i64::MAX)),
            "no cut-off"
        );
        assert!(!set.revokes_tenant_token("t1", None), "no tenant entry");
        set.apply(entry(8, RevocationKind::Tenant, "t1", "t1", Some(10)));
        assert!(set.revokes_tenant_token("t1", Some(10)), "a streamed entry");
    }

    #[test]
    fn apply_and_prune() {
        let set = RevocationSet::default();
        let mut e = entry(7, RevocationKind::Session, "t", "s", None);
        e.expires_at = 10;
        set.apply(e);
        let t = TokenRef {
            tid: "t",
            sub: "u",
            sid: "s",
            iat: 1,
            kid: "k",
        };
        assert!(set.revokes(t));
        assert_eq!(set.cursor(), 7);
        let g = set.generation();
        set.prune(9);
        assert_eq!(set.generation(), g, "nothing pruned, nothing changed");
        assert!(set.revokes(t));
        set.prune(11);
        assert!(set.generation() > g);
        assert!(!set.revokes(t));
        assert_eq!(set.cursor(), 7, "pruning keeps the feed position");
    }
}
