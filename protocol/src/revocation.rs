//! Revocation entries: the cut-offs the API records and streams (`/internal/revocations`,
//! `/internal/revocations/stream`), each with the time until which a token it covers could
//! still be valid, and the rules by which an entry revokes an access token or a machine token.

use serde::{Deserialize, Serialize};

use crate::token::AccessClaims;

/// What a revocation entry cuts off. Its name on the wire and in the database is
/// [`RevocationKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationKind {
    /// Every token of the session `id` (`session`).
    Session,
    /// Tokens of the user `id` issued at or before `iat_cutoff` (`user`).
    User,
    /// Tokens of the tenant `id` (a slug) issued at or before `iat_cutoff` (`tenant`): access
    /// tokens by their `iat` claim, machine tokens by the `iat` of their introspection answer
    /// (written by `deleteTenant`).
    Tenant,
    /// Every token signed by the key `id` (a `kid`) (`key`).
    Key,
    /// The machine token `id` (deleted) (`api_token`).
    ApiToken,
    /// Not a revocation: the session `id` was created (`session_created`). The API's
    /// `sessionEvents` subscriptions follow these through the same feed (and across replicas);
    /// the machine endpoints do not list or stream them, and a verifier that meets one
    /// ignores it: it revokes nothing.
    SessionCreated,
}

impl RevocationKind {
    /// Every kind, in declaration order.
    pub const ALL: [RevocationKind; 6] = [
        RevocationKind::Session,
        RevocationKind::User,
        RevocationKind::Tenant,
        RevocationKind::Key,
        RevocationKind::ApiToken,
        RevocationKind::SessionCreated,
    ];

    /// The kind's name: `session`, `user`, `tenant`, `key`, `api_token` or `session_created`,
    /// as serialized and as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Session => "session",
            RevocationKind::User => "user",
            RevocationKind::Tenant => "tenant",
            RevocationKind::Key => "key",
            RevocationKind::ApiToken => "api_token",
            RevocationKind::SessionCreated => "session_created",
        }
    }

    /// The kind named `name` ([`RevocationKind::as_str`]); `None` for any other text.
    pub fn parse(name: &str) -> Option<Self> {
        RevocationKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for RevocationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One revocation, as listed at `/internal/revocations` and streamed at
/// `/internal/revocations/stream`. The constructors ([`RevocationEntry::session`] …) make
/// entries not yet recorded, with `seq` 0; recording assigns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEntry {
    /// Position in the feed; the stream's event id.
    pub seq: i64,
    /// What is cut off.
    pub kind: RevocationKind,
    /// Tenant slug the entry belongs to; empty for a `key` entry (keys are service-wide).
    pub tenant: String,
    /// Session id, user id, tenant slug, key id or machine-token id, by `kind`.
    pub id: String,
    /// For `user` and `tenant`: tokens with `iat <= iat_cutoff` are revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_cutoff: Option<i64>,
    /// Seconds since the epoch after which no token the entry covers can still be valid,
    /// so the entry can be forgotten.
    pub expires_at: i64,
}

impl RevocationEntry {
    fn new(
        kind: RevocationKind,
        tenant: String,
        id: String,
        iat_cutoff: Option<i64>,
        horizon: i64,
    ) -> Self {
        RevocationEntry {
            seq: 0,
            kind,
            tenant,
            id,
            iat_cutoff,
            expires_at: horizon,
        }
    }

    /// Revokes every token of session `sid` of `tenant` (a slug), kept until `horizon`
    /// (seconds since the epoch, when every token it covers has expired).
    pub fn session(tenant: impl Into<String>, sid: impl Into<String>, horizon: i64) -> Self {
        Self::new(
            RevocationKind::Session,
            tenant.into(),
            sid.into(),
            None,
            horizon,
        )
    }

    /// Revokes the tokens of user `user_id` of `tenant` issued at or before `cutoff` (seconds),
    /// kept until `horizon`.
    pub fn user(
        tenant: impl Into<String>,
        user_id: impl Into<String>,
        cutoff: i64,
        horizon: i64,
    ) -> Self {
        Self::new(
            RevocationKind::User,
            tenant.into(),
            user_id.into(),
            Some(cutoff),
            horizon,
        )
    }

    /// Revokes every token of the tenant `slug` (access and machine tokens) issued at or before
    /// `cutoff` (seconds), kept until `horizon`.
    pub fn tenant(slug: impl Into<String>, cutoff: i64, horizon: i64) -> Self {
        let slug = slug.into();
        Self::new(
            RevocationKind::Tenant,
            slug.clone(),
            slug,
            Some(cutoff),
            horizon,
        )
    }

    /// Revokes every token signed by key `kid`, of every tenant, kept until `horizon`.
    pub fn key(kid: impl Into<String>, horizon: i64) -> Self {
        Self::new(
            RevocationKind::Key,
            String::new(),
            kid.into(),
            None,
            horizon,
        )
    }

    /// Says that session `sid` of `tenant` was created (revokes nothing), kept until
    /// `horizon`.
    pub fn session_created(
        tenant: impl Into<String>,
        sid: impl Into<String>,
        horizon: i64,
    ) -> Self {
        Self::new(
            RevocationKind::SessionCreated,
            tenant.into(),
            sid.into(),
            None,
            horizon,
        )
    }

    /// Revokes the machine token `id` of `tenant` (deleted), kept until `horizon`.
    pub fn api_token(tenant: impl Into<String>, id: impl Into<String>, horizon: i64) -> Self {
        Self::new(
            RevocationKind::ApiToken,
            tenant.into(),
            id.into(),
            None,
            horizon,
        )
    }

    /// Whether this entry revokes the access token with these claims, signed by `kid`:
    ///
    /// | kind | revokes the access token when |
    /// | --- | --- |
    /// | `session` | `tid == tenant` and `sid == id` |
    /// | `user` | `tid == tenant`, `sub == id` and `iat <= iat_cutoff` |
    /// | `tenant` | `tid == id` and `iat <= iat_cutoff` |
    /// | `key` | `kid == id` |
    ///
    /// A `user` or `tenant` entry without a cut-off covers every `iat`; `api_token` entries
    /// concern machine tokens only; `session_created` entries revoke nothing.
    pub fn revokes(&self, claims: &AccessClaims, kid: &str) -> bool {
        let cut = |iat: i64| self.iat_cutoff.is_none_or(|cutoff| iat <= cutoff);
        match self.kind {
            RevocationKind::Session => self.tenant == claims.tid && self.id == claims.sid,
            RevocationKind::User => {
                self.tenant == claims.tid && self.id == claims.sub && cut(claims.iat)
            }
            RevocationKind::Tenant => self.id == claims.tid && cut(claims.iat),
            RevocationKind::Key => self.id == kid,
            RevocationKind::ApiToken | RevocationKind::SessionCreated => false,
        }
    }

    /// Whether this entry revokes the machine token the API's introspection described with
    /// this `client_id` (token id), tenant `tid` and `iat` (seconds; `None` when the answer
    /// has none). Only two kinds reach machine tokens:
    ///
    /// | kind | revokes the machine token when |
    /// | --- | --- |
    /// | `api_token` | `client_id == id` (the token was deleted) |
    /// | `tenant` | `tid == id` and `iat <= iat_cutoff`; an entry without a cut-off, or an answer without `iat`, counts as covered |
    ///
    /// `session`, `user` and `key` entries concern access tokens only (`session_created`
    /// revokes nothing).
    pub fn revokes_machine(&self, client_id: &str, tid: &str, iat: Option<i64>) -> bool {
        match self.kind {
            RevocationKind::ApiToken => self.id == client_id,
            RevocationKind::Tenant => {
                self.id == tid
                    && match (iat, self.iat_cutoff) {
                        (Some(iat), Some(cutoff)) => iat <= cutoff,
                        _ => true,
                    }
            }
            RevocationKind::Session
            | RevocationKind::User
            | RevocationKind::Key
            | RevocationKind::SessionCreated => false,
        }
    }
}

/// The whole revocation list with the feed position it reflects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// The highest `seq` included; resume the stream from here.
    pub cursor: i64,
    /// Entries whose `expires_at` is still in the future.
    pub entries: Vec<RevocationEntry>,
    /// The low-water mark: every entry with a `seq` up to here that will ever exist had
    /// committed when the list was read (so it is listed, if in force and for this reader).
    /// Passed to the stream as `?complete=`, its look-back for late commits starts after it.
    /// 0 (what an older API, which sends none, means) makes the stream look back in full.
    #[serde(default)]
    pub complete_to: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(tid: &str, sub: &str, sid: &str, iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: sub.into(),
            tid: tid.into(),
            sid: sid.into(),
            roles: vec![],
            iat,
            exp: iat.saturating_add(900),
            jti: "j".into(),
        }
    }

    #[test]
    fn kind_names_are_one_list_for_serde_as_str_and_parse() {
        let names: Vec<&str> = RevocationKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "session",
                "user",
                "tenant",
                "key",
                "api_token",
                "session_created"
            ]
        );
        for kind in RevocationKind::ALL {
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
            assert_eq!(RevocationKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(RevocationKind::parse("Session"), None);
        assert_eq!(RevocationKind::parse("apiToken"), None);
    }

    #[test]
    fn constructors_fill_in_tenant_id_and_cutoff_by_kind() {
        let e = RevocationEntry::session("acme", "s1", 99);
        assert_eq!(
            e,
            RevocationEntry {
                seq: 0,
                kind: RevocationKind::Session,
                tenant: "acme".into(),
                id: "s1".into(),
                iat_cutoff: None,
                expires_at: 99,
            }
        );
        let e = RevocationEntry::user("acme", "u1", 10, 99);
        assert_eq!(
            (e.kind, &*e.tenant, &*e.id, e.iat_cutoff),
            (RevocationKind::User, "acme", "u1", Some(10))
        );
        let e = RevocationEntry::tenant("acme", 10, 99);
        assert_eq!(
            (e.kind, &*e.tenant, &*e.id, e.iat_cutoff),
            (RevocationKind::Tenant, "acme", "acme", Some(10))
        );
        let e = RevocationEntry::key("k1", 99);
        assert_eq!(
            (e.kind, &*e.tenant, &*e.id, e.iat_cutoff),
            (RevocationKind::Key, "", "k1", None)
        );
        let e = RevocationEntry::api_token("acme", "m1", 99);
        assert_eq!(
            (
                e.kind,
                &*e.tenant,
                &*e.id,
                e.iat_cutoff,
                e.seq,
                e.expires_at
            ),
            (RevocationKind::ApiToken, "acme", "m1", None, 0, 99)
        );
    }

    #[test]
    fn an_entry_round_trips_and_leaves_out_an_absent_cutoff() {
        let e = RevocationEntry {
            seq: 7,
            ..RevocationEntry::session("acme", "s1", 99)
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"seq":7,"kind":"session","tenant":"acme","id":"s1","expires_at":99}"#
        );
        assert_eq!(serde_json::from_str::<RevocationEntry>(&json).unwrap(), e);
        let list = RevocationList {
            cursor: 8,
            entries: vec![e, RevocationEntry::user("acme", "u1", 10, 99)],
            complete_to: 7,
        };
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(serde_json::from_str::<RevocationList>(&json).unwrap(), list);
        // A list from an API that sends no low-water mark means a full look-back.
        let old: RevocationList = serde_json::from_str(r#"{"cursor":3,"entries":[]}"#).unwrap();
        assert_eq!(old.complete_to, 0);
    }

    #[test]
    fn access_tokens_are_revoked_by_session_user_tenant_and_key_entries() {
        let session = RevocationEntry::session("t1", "s1", 0);
        assert!(session.revokes(&claims("t1", "u1", "s1", 10), "k"));
        assert!(
            !session.revokes(&claims("t2", "u1", "s1", 10), "k"),
            "another tenant's session"
        );
        assert!(!session.revokes(&claims("t1", "u1", "s2", 10), "k"));

        let user = RevocationEntry::user("t1", "u1", 100, 0);
        assert!(
            user.revokes(&claims("t1", "u1", "s", 100), "k"),
            "at the cut-off"
        );
        assert!(
            !user.revokes(&claims("t1", "u1", "s", 101), "k"),
            "issued after"
        );
        assert!(!user.revokes(&claims("t2", "u1", "s", 10), "k"));
        assert!(!user.revokes(&claims("t1", "u2", "s", 10), "k"));
        let everything = RevocationEntry {
            iat_cutoff: None,
            ..user
        };
        assert!(everything.revokes(&claims("t1", "u1", "s", i64::MAX), "k"));

        let tenant = RevocationEntry::tenant("t3", 50, 0);
        assert!(tenant.revokes(&claims("t3", "u", "s", 50), "k"));
        assert!(!tenant.revokes(&claims("t3", "u", "s", 51), "k"));
        assert!(!tenant.revokes(&claims("t1", "u", "s", 1), "k"));

        let key = RevocationEntry::key("k4", 0);
        assert!(key.revokes(&claims("any", "u", "s", 1), "k4"));
        assert!(!key.revokes(&claims("any", "u", "s", 1), "k1"));

        let api_token = RevocationEntry::api_token("t1", "s1", 0);
        assert!(
            !api_token.revokes(&claims("t1", "s1", "s1", 1), "s1"),
            "machine-token entries never reach access tokens"
        );
    }

    #[test]
    fn machine_tokens_are_revoked_by_api_token_and_tenant_entries_only() {
        let deleted = RevocationEntry::api_token("t1", "m1", 0);
        assert!(deleted.revokes_machine("m1", "t1", Some(1)));
        assert!(deleted.revokes_machine("m1", "other", None), "by id alone");
        assert!(!deleted.revokes_machine("m2", "t1", Some(1)));

        let gone = RevocationEntry::tenant("gone", 100, 0);
        assert!(
            gone.revokes_machine("m", "gone", Some(100)),
            "at the cut-off"
        );
        assert!(
            !gone.revokes_machine("m", "gone", Some(101)),
            "issued after"
        );
        assert!(gone.revokes_machine("m", "gone", None), "no iat: covered");
        assert!(!gone.revokes_machine("m", "t1", Some(1)));
        let wiped = RevocationEntry {
            iat_cutoff: None,
            ..gone
        };
        assert!(
            wiped.revokes_machine("m", "gone", Some(i64::MAX)),
            "no cut-off"
        );

        for other in [
            RevocationEntry::session("t1", "m1", 0),
            RevocationEntry::user("t1", "m1", i64::MAX, 0),
            RevocationEntry::key("m1", 0),
        ] {
            assert!(!other.revokes_machine("m1", "t1", Some(1)), "{other:?}");
        }
    }
}
