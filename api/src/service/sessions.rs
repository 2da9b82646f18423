//! The caller's own account and sessions: reading them, ending one or all, and how every
//! revocation is written (with its feed entries, kept until every token they cover expired).

use super::{Auth, Caller, Error, Result, user_of};
use crate::domain::{AuditAction, Device, RevokeReason, Session, Tenant, User, UserEmail, now_ms};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;
use crate::store::sessions::Revoking;

impl Auth {
    /// The caller's user.
    pub async fn me(&self, tenant: &Tenant, caller: &Caller) -> Result<User> {
        let user_id = user_of(caller)?;
        Ok(self.store.user_by_id(&tenant.id, user_id).await?)
    }

    /// Every address of a user, primary first.
    pub async fn user_emails(&self, user: &User) -> Result<Vec<UserEmail>> {
        Ok(self.store.user_emails(&user.tenant_id, &user.id).await?)
    }

    /// The caller's active sessions, newest first.
    pub async fn sessions(&self, tenant: &Tenant, caller: &Caller) -> Result<Vec<Session>> {
        Ok(self
            .store
            .active_sessions(&tenant.id, user_of(caller)?)
            .await?)
    }

    /// One of the caller's sessions (revoked ones too); `None` for another user's.
    pub async fn session(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<Session>> {
        let user_id = user_of(caller)?;
        match self.store.session(&tenant.id, id).await {
            Ok(session) if session.user_id == user_id => Ok(Some(session)),
            Ok(_) | Err(StoreError::NotFound) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Revoke one of the caller's sessions.
    pub async fn revoke_session(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        id: &str,
        origin: &Device,
    ) -> Result<()> {
        self.end_session(tenant, caller, id, origin, AuditAction::SessionRevoked)
            .await
    }

    /// End one of the caller's sessions, recording `action` in the revocation's transaction.
    async fn end_session(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        id: &str,
        origin: &Device,
        action: AuditAction,
    ) -> Result<()> {
        let user_id = user_of(caller)?;
        let event = self.event(action, Some(caller), user_id, Some(id), origin);
        let revoking = self
            .revoking(tenant, RevokeReason::Revoked)
            .with_audit(&event);
        if !self.store.revoke_session(revoking, user_id, id).await? {
            return Err(Error::NotFound("session"));
        }
        self.feed.announce();
        Ok(())
    }

    /// End the caller's own session.
    pub async fn sign_out(&self, tenant: &Tenant, caller: &Caller, origin: &Device) -> Result<()> {
        let Caller::User { session_id, .. } = caller else {
            return Err(Error::Forbidden(
                "only a signed-in user can sign out".into(),
            ));
        };
        self.end_session(
            tenant,
            caller,
            session_id,
            origin,
            AuditAction::SessionSignedOut,
        )
        .await
    }

    /// Revoke every session of the caller, theirs included; returns how many there were.
    pub async fn revoke_all_sessions(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        origin: &Device,
    ) -> Result<u64> {
        let user_id = user_of(caller)?.to_owned();
        let event = self.event(
            AuditAction::SessionRevokedAll,
            Some(caller),
            &user_id,
            None,
            origin,
        );
        self.revoke_user(tenant, &user_id, RevokeReason::RevokedAll, Some(&event))
            .await
    }

    /// Revoke every session and access token of a user: a user cut-off and a session entry
    /// per session ended, written with the revocation (and `audit`) in one transaction.
    pub async fn revoke_user(
        &self,
        tenant: &Tenant,
        user_id: &str,
        reason: RevokeReason,
        audit: Option<&AuditEvent<'_>>,
    ) -> Result<u64> {
        let mut revoking = self.revoking(tenant, reason);
        revoking.audit = audit;
        let count = self.store.revoke_user_sessions(revoking, user_id).await?;
        self.feed.announce();
        Ok(count)
    }

    /// How a revocation in `tenant` is written: its reason and the horizon of its entries.
    pub(super) fn revoking<'a>(&self, tenant: &'a Tenant, reason: RevokeReason) -> Revoking<'a> {
        Revoking {
            tenant,
            reason,
            horizon: self.revocation_horizon(),
            audit: None,
        }
    }

    /// When every access token issued until now has expired (seconds), plus leeway.
    pub(super) fn revocation_horizon(&self) -> i64 {
        now_ms() / 1000 + self.config.access_ttl_seconds + 120
    }
}
