//! Tokens handed to clients: sessions started with their first refresh token, access tokens
//! minted, and refresh tokens rotated with a grace window and reuse detection.

use auth_protocol::AccessClaims;
use serde::{Deserialize, Serialize};

use super::mfa::{Cleared, PendingSignIn};
use super::{Auth, Caller, Error, Result};
use crate::crypto;
use crate::domain::{
    AuditAction, Device, Email, RevokeReason, Session, SignInMethod, Tenant, User, new_id, now_ms,
};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;
use crate::store::connections::ConnectionWrite;
use crate::store::sessions::{NewSession, Rotation};

/// A session started through a provider: its name (for the audit log) and the connection
/// to store with the session, if any.
#[derive(Debug, Clone, Copy)]
pub(super) struct OAuthSignIn<'a> {
    /// The provider's name.
    pub(super) provider: &'a str,
    /// Provider tokens to store as a connection.
    pub(super) connection: Option<&'a ConnectionWrite>,
}

/// Tokens handed to a client, with the user and session they are for.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The tokens.
    pub tokens: TokenPair,
    /// The user.
    pub user: User,
    /// The session.
    pub session: Session,
}

/// An access token and the refresh token that renews it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenPair {
    /// JWT.
    pub access_token: String,
    /// Opaque, single use.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// The actor of what the service does by itself (reuse detection, idle expiry, retention).
pub(super) const SYSTEM: &str = "system";

fn successor_context(refresh_id: &str) -> String {
    format!("refresh_tokens:{refresh_id}")
}

impl Auth {
    /// Exchange a refresh token for a new pair. A used token presented again within the
    /// grace window gets the pair it was exchanged for; after that the session is revoked.
    pub async fn refresh(
        &self,
        tenant: &Tenant,
        refresh_token: &str,
        origin: &Device,
    ) -> Result<Issued> {
        const INVALID: Error = Error::Unauthenticated("refresh token is invalid or expired");
        let hash = crypto::token_hash(refresh_token);
        let mut row = match self.store.refresh_token(&hash).await {
            Err(StoreError::NotFound) => return Err(INVALID),
            other => other?,
        };
        if row.tenant_id != tenant.id {
            return Err(Error::Forbidden(
                "this token belongs to another tenant".into(),
            ));
        }
        let session = self.store.session(&tenant.id, &row.session_id).await?;
        let now = now_ms();
        if !session.is_active(now) || row.expires_at <= now {
            return Err(INVALID);
        }
        let user = self.store.user_by_id(&tenant.id, &session.user_id).await?;
        if user.disabled_at.is_some() {
            return Err(INVALID);
        }
        // Unused for longer than the tenant's idle lifetime: refused, and ended for good.
        if let Some(idle) = tenant.settings.session_idle_seconds
            && now - session.last_seen_at > idle * 1000
        {
            let event = AuditEvent {
                action: AuditAction::SessionIdleExpired,
                actor: Some(SYSTEM.into()),
                user_id: Some(&user.id),
                session_id: Some(&session.id),
                ip: origin.ip.as_deref(),
                user_agent: origin.user_agent.as_deref(),
                detail: serde_json::json!({ "idle_seconds": idle, "last_seen_at": session.last_seen_at }),
            };
            let revoking = self.revoking(tenant, RevokeReason::Idle).with_audit(&event);
            if self
                .store
                .revoke_session(revoking, &user.id, &session.id)
                .await?
            {
                self.feed.announce();
            }
            return Err(Error::Unauthenticated("session expired after being idle"));
        }
        if row.used_at.is_none() {
            let refreshed = AuditEvent {
                action: AuditAction::SessionRefreshed,
                actor: Some(Caller::user_actor(&user.id)),
                user_id: Some(&user.id),
                session_id: Some(&session.id),
                ip: origin.ip.as_deref(),
                user_agent: origin.user_agent.as_deref(),
                detail: serde_json::json!({}),
            };
            let pair = self.mint_pair(tenant, &user, &session.id)?;
            let sealed = self.master.seal(
                &successor_context(&row.id),
                &serde_json::to_vec(&pair).map_err(anyhow::Error::from)?,
            );
            let rotation = self
                .store
                .rotate_refresh_token(
                    &tenant.id,
                    &session.id,
                    &row.id,
                    &crypto::token_hash(&pair.refresh_token),
                    session.expires_at,
                    &sealed,
                    &refreshed,
                )
                .await?;
            match rotation {
                Rotation::Won => {
                    return Ok(Issued {
                        tokens: pair,
                        user,
                        session,
                    });
                }
                // Revoked since it was read above: no new pair.
                Rotation::SessionEnded => return Err(INVALID),
                // Another request exchanged it first: answer as a replay of that exchange.
                Rotation::Lost => row = self.store.refresh_token(&hash).await?,
            }
        }
        // 0 turns the grace off: a token presented a second time is reuse, even when both
        // presentations were in flight at once (a batch, two concurrent requests).
        let grace_ms = self.config.refresh_grace_seconds * 1000;
        let within_grace =
            grace_ms > 0 && row.used_at.is_some_and(|used| now_ms() - used <= grace_ms);
        if within_grace && let Some(sealed) = &row.successor {
            let pair: TokenPair = self
                .master
                .open(&successor_context(&row.id), sealed)
                .and_then(|plain| serde_json::from_slice(&plain).ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("sealed successor of a refresh token cannot be opened")
                })?;
            return Ok(Issued {
                tokens: pair,
                user,
                session,
            });
        }
        // Reuse of a spent token: whoever holds it may have stolen it. End the session.
        let event = AuditEvent {
            action: AuditAction::SessionRefreshReuse,
            actor: Some(SYSTEM.into()),
            user_id: Some(&user.id),
            session_id: Some(&session.id),
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: serde_json::json!({}),
        };
        self.store
            .revoke_session(
                self.revoking(tenant, RevokeReason::RefreshReuse)
                    .with_audit(&event),
                &user.id,
                &session.id,
            )
            .await?;
        self.feed.announce();
        tracing::warn!(session = %session.id, "refresh token reuse: session revoked");
        Err(INVALID)
    }

    /// Start a session for `user` with its first tokens; `forget_attempts_of` names the
    /// address whose counted sign-in attempts the same transaction forgets.
    pub(super) async fn start_session(
        &self,
        tenant: &Tenant,
        user: User,
        method: SignInMethod,
        action: AuditAction,
        origin: &Device,
        forget_attempts_of: Option<&Email>,
    ) -> Result<Issued> {
        self.start_session_with(
            tenant,
            user,
            method,
            action,
            origin,
            forget_attempts_of,
            None,
        )
        .await
    }

    /// [`Auth::start_session`] for a provider sign-in: the provider named in the audit
    /// event, and (with `upsertConnection`) its tokens stored as a connection in the
    /// session's transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_session_with(
        &self,
        tenant: &Tenant,
        user: User,
        method: SignInMethod,
        action: AuditAction,
        origin: &Device,
        forget_attempts_of: Option<&Email>,
        oauth: Option<OAuthSignIn<'_>>,
    ) -> Result<Issued> {
        let pending = PendingSignIn {
            method,
            action,
            forget_attempts_of,
            oauth: oauth.as_ref(),
            factors: None,
        };
        self.start_pending(tenant, user, &pending, origin).await
    }

    /// Every way in (password, code, reset, provider) ends here: a disabled account is
    /// refused once its credentials proved right, so a wrong password still says only
    /// `INVALID_CREDENTIALS`. And here the second step is demanded: `MFA_REQUIRED` (with
    /// the pending sign-in stored behind an mfaToken) when the user has a factor or the
    /// tenant demands one. A session can only be opened with the `Cleared` this answers
    /// otherwise, or that `verifyMfa` answers once the factor proved right.
    pub(super) async fn start_pending(
        &self,
        tenant: &Tenant,
        user: User,
        pending: &PendingSignIn<'_>,
        origin: &Device,
    ) -> Result<Issued> {
        self.refuse_disabled(tenant, &user, pending.method, origin)
            .await?;
        let cleared = self.second_step(tenant, &user, pending, origin).await?;
        self.open_session(
            tenant,
            user,
            pending.method,
            pending.action,
            origin,
            pending.forget_attempts_of,
            pending.oauth.copied(),
            cleared,
        )
        .await
    }

    /// Open the session of a sign-in that [`Auth::second_step`] (or `verifyMfa`) cleared:
    /// the only way to one, since only `service::mfa` can make a [`Cleared`].
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn open_session(
        &self,
        tenant: &Tenant,
        user: User,
        method: SignInMethod,
        action: AuditAction,
        origin: &Device,
        forget_attempts_of: Option<&Email>,
        oauth: Option<OAuthSignIn<'_>>,
        cleared: Cleared,
    ) -> Result<Issued> {
        let refresh_token = crypto::random_token(32);
        let id = new_id();
        let audit = AuditEvent {
            action,
            actor: Some(Caller::user_actor(&user.id)),
            user_id: Some(&user.id),
            session_id: Some(&id),
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: {
                let mut detail = serde_json::json!({ "method": method.as_str() });
                if let Some(oauth) = &oauth {
                    detail["provider"] = oauth.provider.into();
                }
                // The second factor the session was started with, when one was asked for.
                if let Some(factor) = cleared.factor() {
                    detail["mfa"] = factor.into();
                }
                detail
            },
        };
        let connection = oauth.and_then(|o| o.connection);
        let session = self
            .store
            .create_session_with(
                NewSession {
                    tenant_id: &tenant.id,
                    tenant_slug: &tenant.slug,
                    id: &id,
                    user_id: &user.id,
                    method,
                    device: origin,
                    lifetime_ms: tenant
                        .settings
                        .session_ttl_seconds
                        .unwrap_or(self.config.session_ttl_seconds)
                        * 1000,
                    refresh_hash: &crypto::token_hash(&refresh_token),
                    audit,
                    forget_attempts_of: forget_attempts_of.map(Email::as_str),
                },
                connection,
            )
            .await?;
        // Subscribers to `sessionEvents` hear of it through the feed (other replicas'
        // through the NOTIFY the commit sent).
        self.feed.announce_session_created();
        let (access_token, expires_in) = self.mint_access(tenant, &user, &session.id)?;
        Ok(Issued {
            tokens: TokenPair {
                access_token,
                refresh_token,
                expires_in,
            },
            user,
            session,
        })
    }

    /// `FORBIDDEN` ("account disabled") for a disabled account, with an audit event; the
    /// sign-in paths call it once the credentials proved right and before they change
    /// anything.
    pub(super) async fn refuse_disabled(
        &self,
        tenant: &Tenant,
        user: &User,
        method: SignInMethod,
        origin: &Device,
    ) -> Result<()> {
        if user.disabled_at.is_none() {
            return Ok(());
        }
        self.store
            .audit(
                &tenant.id,
                AuditEvent {
                    action: AuditAction::UserSignInDisabled,
                    actor: Some(Caller::user_actor(&user.id)),
                    user_id: Some(&user.id),
                    session_id: None,
                    ip: origin.ip.as_deref(),
                    user_agent: origin.user_agent.as_deref(),
                    detail: serde_json::json!({ "method": method.as_str() }),
                },
            )
            .await;
        Err(Error::Forbidden("account disabled".into()))
    }

    fn mint_pair(&self, tenant: &Tenant, user: &User, session_id: &str) -> Result<TokenPair> {
        let (access_token, expires_in) = self.mint_access(tenant, user, session_id)?;
        Ok(TokenPair {
            access_token,
            refresh_token: crypto::random_token(32),
            expires_in,
        })
    }

    fn mint_access(&self, tenant: &Tenant, user: &User, session_id: &str) -> Result<(String, i64)> {
        let now = now_ms() / 1000;
        // Tokens issued after a cut-off must sort after it, even within the same second.
        let iat = now.max(user.tokens_valid_after + 1);
        let ttl = tenant
            .settings
            .access_token_ttl_seconds
            .map_or(self.config.access_ttl_seconds, |ttl| {
                ttl.min(self.config.access_ttl_seconds)
            });
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience().to_owned(),
            sub: user.id.clone(),
            tid: tenant.slug.clone(),
            sid: session_id.to_owned(),
            roles: user.roles.clone(),
            iat,
            exp: iat + ttl,
            jti: crate::domain::new_id(),
        };
        Ok((self.keys.sign(&claims)?, ttl))
    }
}
