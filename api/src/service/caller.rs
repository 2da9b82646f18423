//! Who is calling: a bearer token checked once per request, turned into a [`Caller`] (a
//! signed-in user or a machine token), and what a caller holds.

use auth_protocol::{AccessClaims, MACHINE_TOKEN_PREFIX};

use super::{Auth, Error, Result};
use crate::crypto;
use crate::domain::{ADMIN_ROLE, ApiToken, Scope, Tenant, now_ms};
use crate::store::StoreError;

/// Who is calling, once their bearer token has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A signed-in user, by access token.
    User {
        /// User id.
        user_id: String,
        /// The session the token belongs to.
        session_id: String,
        /// Roles from the token.
        roles: Vec<String>,
    },
    /// A machine token.
    Machine {
        /// Token id.
        token_id: String,
        /// Its scopes.
        scopes: Vec<Scope>,
    },
}

impl Caller {
    /// Whether the caller may use the tenant's admin operations.
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::User { roles, .. } => roles.iter().any(|r| r == ADMIN_ROLE),
            Caller::Machine { scopes, .. } => scopes.contains(&Scope::Admin),
        }
    }

    /// Whether the caller is a signed-in user (not a machine token).
    pub fn is_user(&self) -> bool {
        matches!(self, Caller::User { .. })
    }

    /// Whether the caller is a machine token with `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        matches!(self, Caller::Machine { scopes, .. } if scopes.contains(&scope))
    }

    /// Whether the caller holds `scope`, and so may grant it: a user with the admin role
    /// holds its tenant's scopes (`admin`, `connections`, `verify`), a machine token exactly
    /// its own. `platform` is held only by platform tokens.
    pub fn holds(&self, scope: Scope) -> bool {
        match self {
            Caller::User { .. } => self.is_admin() && scope != Scope::Platform,
            Caller::Machine { scopes, .. } => scopes.contains(&scope),
        }
    }

    /// The actor recorded in the audit log.
    pub fn actor(&self) -> String {
        match self {
            Caller::User { user_id, .. } => Self::user_actor(user_id),
            Caller::Machine { token_id, .. } => format!("token:{token_id}"),
        }
    }

    /// The actor of something the user `user_id` did themself.
    pub fn user_actor(user_id: &str) -> String {
        format!("user:{user_id}")
    }
}

impl Auth {
    /// Check a bearer token presented to `tenant`: an access token of an active session of
    /// this tenant, or a machine token of this tenant (or with scope `platform`).
    pub async fn authenticate(&self, tenant: &Tenant, bearer: &str) -> Result<Caller> {
        if bearer.starts_with(MACHINE_TOKEN_PREFIX) {
            let token = self.machine_token(bearer).await?;
            if token.tenant_id != tenant.id && !token.scopes.contains(&Scope::Platform) {
                return Err(Error::Forbidden(
                    "this token belongs to another tenant".into(),
                ));
            }
            return Ok(Caller::Machine {
                token_id: token.id,
                scopes: token.scopes,
            });
        }
        let claims = self.verify_access_token(bearer).await?;
        if claims.tid != tenant.slug {
            return Err(Error::Forbidden(
                "this token belongs to another tenant".into(),
            ));
        }
        let (session, cutoff) = match self
            .store
            .session_with_cutoff(&tenant.id, &claims.sid)
            .await
        {
            Err(StoreError::NotFound) => return Err(Error::Unauthenticated("session has ended")),
            other => other?,
        };
        let now = now_ms();
        if !session.is_active(now) || session.user_id != claims.sub {
            return Err(Error::Unauthenticated("session has ended"));
        }
        // A user cut-off (roles changed, say) refuses the tokens issued until then; the
        // session's next refresh gets one with what holds now.
        if claims.iat <= cutoff {
            return Err(Error::Unauthenticated(
                "access token was revoked; refresh it",
            ));
        }
        if now - session.last_seen_at > 60_000 {
            self.store.touch_session(&session.id, now).await?;
        }
        Ok(Caller::User {
            user_id: claims.sub,
            session_id: claims.sid,
            roles: claims.roles,
        })
    }

    /// Verify an access token's signature and claims (not its session), reloading the keys
    /// once if its key is unknown (another replica may have rotated).
    pub async fn verify_access_token(&self, token: &str) -> Result<AccessClaims> {
        match self.keys.verify(token) {
            Ok(claims) => Ok(claims),
            Err(_) => {
                self.keys.reload_if_stale().await;
                self.keys
                    .verify(token)
                    .map_err(|_| Error::Unauthenticated("access token is invalid or expired"))
            }
        }
    }

    /// The machine token with this secret; `UNAUTHENTICATED` when there is none.
    pub(super) async fn machine_token(&self, secret: &str) -> Result<ApiToken> {
        match self
            .store
            .api_token_by_hash(&crypto::token_hash(secret))
            .await
        {
            Err(StoreError::NotFound) => Err(Error::Unauthenticated("machine token is invalid")),
            Ok(token) if token.expires_at.is_some_and(|at| at <= now_ms()) => {
                Err(Error::Unauthenticated("machine token has expired"))
            }
            other => Ok(other?),
        }
    }
}
