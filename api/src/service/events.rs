//! `sessionEvents`: a signed-in user's sessions created and revoked, live. Each subscription
//! follows the replica's feed (the same entries verifiers follow, across replicas through
//! PostgreSQL LISTEN/NOTIFY, plus `session_created` entries) and keeps what concerns its own
//! user. When the subscriber's own session is cut off it gets that REVOKED event and the
//! stream ends. Subscriptions are bounded per session and per process, and counted in
//! `/metrics` (`auth_subscriptions_active`, `auth_subscriptions_refused_total`).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use auth_protocol::{AccessClaims, RevocationKind};
use futures_util::Stream;
use tokio::sync::broadcast;

use super::feed::FeedItem;
use super::{Auth, Caller, Error, Result};
use crate::domain::{Millis, Tenant, now_ms};
use crate::store::StoreError;

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEventKind {
    /// It started (a sign-in anywhere).
    Created,
    /// It ended (signed out, revoked, by an admin, a password change …).
    Revoked,
}

/// One event of `sessionEvents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    /// What happened.
    pub kind: SessionEventKind,
    /// The session.
    pub session_id: String,
    /// When (milliseconds).
    pub at: Millis,
}

/// The events of one subscription, ending when the subscriber's own session is revoked or
/// the service shuts down.
pub type SessionEvents = Pin<Box<dyn Stream<Item = SessionEvent> + Send>>;

/// Open subscriptions, per session and in all, against their limits.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    per_session: usize,
    max: usize,
    open: Mutex<HashMap<String, usize>>,
    total: std::sync::atomic::AtomicUsize,
}

impl Subscriptions {
    pub(crate) fn new(per_session: usize, max: usize) -> Self {
        Self {
            per_session,
            max,
            open: Mutex::new(HashMap::new()),
            total: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Take a place for one more subscription of `session_id`; `FORBIDDEN` when the session
    /// or the process has no room left.
    fn acquire(self: &Arc<Self>, session_id: &str) -> Result<Slot> {
        use std::sync::atomic::Ordering;
        let refuse = |reason: &'static str, message: String| {
            metrics::counter!("auth_subscriptions_refused_total", "reason" => reason).increment(1);
            Err(Error::Forbidden(message))
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let held = open.get(session_id).copied().unwrap_or(0);
        if held >= self.per_session {
            return refuse(
                "per_session",
                format!(
                    "a session may hold at most {} subscriptions at once",
                    self.per_session
                ),
            );
        }
        if self.total.load(Ordering::Acquire) >= self.max {
            return refuse(
                "per_process",
                "this server holds as many subscriptions as it may; try another or later".into(),
            );
        }
        open.insert(session_id.to_owned(), held + 1);
        self.total.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!("auth_subscriptions_active").increment(1.0);
        Ok(Slot {
            registry: self.clone(),
            session_id: session_id.to_owned(),
        })
    }

    fn release(&self, session_id: &str) {
        use std::sync::atomic::Ordering;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = open.get_mut(session_id) {
            *held -= 1;
            if *held == 0 {
                open.remove(session_id);
            }
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("auth_subscriptions_active").decrement(1.0);
    }
}

/// One subscription's place; given back when the stream is dropped.
#[derive(Debug)]
struct Slot {
    registry: Arc<Subscriptions>,
    session_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.release(&self.session_id);
    }
}

/// What a subscription's stream carries from one poll to the next (one lives per idle
/// subscription: keep it small).
struct Follow {
    auth: Auth,
    tenant_id: String,
    claims: AccessClaims,
    kid: String,
    items: broadcast::Receiver<Arc<FeedItem>>,
    /// When the subscription began: another session's entries written before it are not
    /// this subscription's news, even when this replica hears of them later.
    since: Millis,
    done: bool,
    _slot: Slot,
}

impl Follow {
    /// The next event for this subscriber, or `None` once its stream is over.
    async fn next(&mut self) -> Option<SessionEvent> {
        if self.done {
            return None;
        }
        loop {
            let item = tokio::select! {
                item = self.items.recv() => item,
                () = self.auth.stopped() => return None,
            };
            match item {
                Ok(item) => {
                    if let Some(event) = self.event_of(&item) {
                        return Some(event);
                    }
                }
                // Fell behind: events were lost, but whether our own session still stands
                // is in the database.
                // Boxed: the database query's future is large, and this future lives inline
                // in every idle subscription's stream.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !Box::pin(self.own_session_active()).await {
                        self.done = true;
                        return Some(self.own_revoked(now_ms()));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn own_revoked(&self, at: Millis) -> SessionEvent {
        SessionEvent {
            kind: SessionEventKind::Revoked,
            session_id: self.claims.sid.clone(),
            at,
        }
    }

    fn event_of(&mut self, item: &FeedItem) -> Option<SessionEvent> {
        let entry = &item.entry;
        // Our own token cut off (its session, the user before a time, the tenant, the key):
        // the last event, then the stream ends.
        if entry.revokes(&self.claims, &self.kid) {
            self.done = true;
            return Some(self.own_revoked(item.at));
        }
        if entry.tenant != self.claims.tid
            || item.user_id.as_deref() != Some(&self.claims.sub)
            || item.at < self.since
        {
            return None;
        }
        let kind = match entry.kind {
            RevocationKind::SessionCreated => SessionEventKind::Created,
            RevocationKind::Session => SessionEventKind::Revoked,
            _ => return None,
        };
        Some(SessionEvent {
            kind,
            session_id: entry.id.clone(),
            at: item.at,
        })
    }

    async fn own_session_active(&self) -> bool {
        match self
            .auth
            .store
            .session(&self.tenant_id, &self.claims.sid)
            .await
        {
            Ok(session) => session.is_active(now_ms()),
            Err(StoreError::NotFound) => false,
            // The database is away: keep going, the next lag or event decides.
            Err(error) => {
                tracing::warn!(error = %error, "subscription could not check its session");
                true
            }
        }
    }
}

impl Auth {
    /// Open a `sessionEvents` subscription for the holder of `bearer` (an access token of an
    /// active session of `tenant`): `UNAUTHENTICATED` for a missing, invalid, expired or
    /// revoked token, `FORBIDDEN` for a machine token or when the session (or the process)
    /// holds as many subscriptions as it may. The feed is followed from before the session
    /// is checked, so a revocation racing the subscription is not missed.
    pub async fn session_events(&self, tenant: &Tenant, bearer: &str) -> Result<SessionEvents> {
        let since = now_ms();
        let items = self.feed.subscribe_items();
        let caller = self.authenticate(tenant, bearer).await?;
        let Caller::User { session_id, .. } = &caller else {
            return Err(Error::Forbidden(
                "sessionEvents needs a signed-in user's access token".into(),
            ));
        };
        let claims = self.verify_access_token(bearer).await?;
        let kid = jsonwebtoken::decode_header(bearer)
            .ok()
            .and_then(|header| header.kid)
            .unwrap_or_default();
        let slot = self.subscriptions.acquire(session_id)?;
        let follow = Follow {
            auth: self.clone(),
            tenant_id: tenant.id.clone(),
            claims,
            kid,
            items,
            since,
            done: false,
            _slot: slot,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            follow,
            |mut follow| async move {
                let event = follow.next().await?;
                Some((event, follow))
            },
        )))
    }

    /// How many `sessionEvents` subscriptions this process holds.
    pub fn open_subscriptions(&self) -> usize {
        self.subscriptions
            .total
            .load(std::sync::atomic::Ordering::Acquire)
    }
}
