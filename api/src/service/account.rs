//! The account's own life after sign-up: changing the password and deleting the account, by
//! the user or by an admin of the tenant, and an admin ending all of a user's sessions. Each
//! path that ends sessions publishes revocation entries, so verifiers refuse the tokens at
//! once.

use super::limits::Guarded;
use super::{Auth, Caller, Device, Error, Result, passwords, user_of};
use crate::domain::{AuditAction, Password, RevokeReason, Tenant};
use crate::store::StoreError;

impl Auth {
    /// Change the caller's password; the current one must be given. Every other session of
    /// the account ends (one revocation entry each); the caller's own session goes on.
    /// Accounts without a password (codes or providers only) get one through
    /// `requestPasswordReset`, which proves the address, not through here.
    pub async fn change_password(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        current: &str,
        new: &str,
        origin: &Device,
    ) -> Result<()> {
        let Caller::User {
            user_id,
            session_id,
            ..
        } = caller
        else {
            return Err(Error::Forbidden(
                "this operation needs a signed-in user".into(),
            ));
        };
        self.throttle(tenant, Guarded::ChangePassword, user_id, origin)
            .await?;
        let user = self.store.user_by_id(&tenant.id, user_id).await?;
        let Some(hash) = user.password_hash.as_deref() else {
            return Err(Error::Forbidden(
                "this account has no password; set one with requestPasswordReset".into(),
            ));
        };
        let emails = self.store.user_emails(&tenant.id, user_id).await?;
        let emails: Vec<&str> = emails.iter().map(|e| e.email.as_str()).collect();
        let password = Password::new(new, &emails)?;
        if !passwords::verify(current, Some(hash)).await? {
            self.audit(
                tenant,
                Some(caller),
                AuditAction::UserPasswordChangeFailed,
                user_id,
                Some(session_id),
                origin,
            )
            .await;
            return Err(Error::InvalidCredentials);
        }
        let hash = passwords::hash(&password).await?;
        self.store
            .set_password_hash(&tenant.id, user_id, &hash)
            .await?;
        let event = self.event(
            AuditAction::UserPasswordChanged,
            Some(caller),
            user_id,
            Some(session_id),
            origin,
        );
        self.store
            .revoke_other_sessions(
                self.revoking(tenant, RevokeReason::PasswordChanged)
                    .with_audit(&event),
                user_id,
                session_id,
            )
            .await?;
        self.feed.announce();
        Ok(())
    }

    /// Delete the caller's own account.
    pub async fn delete_account(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        origin: &Device,
    ) -> Result<()> {
        let user_id = user_of(caller)?.to_owned();
        self.delete_user(tenant, caller, &user_id, origin).await
    }

    /// End every session of a user of the tenant and cut off their access tokens (admin);
    /// returns how many sessions were active.
    pub async fn admin_revoke_sessions(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        user_id: &str,
        origin: &Device,
    ) -> Result<u64> {
        self.existing_user(tenant, user_id).await?;
        let event = self.event(
            AuditAction::AdminSessionsRevoked,
            Some(caller),
            user_id,
            None,
            origin,
        );
        let count = self
            .revoke_user(tenant, user_id, RevokeReason::AdminRevoked, Some(&event))
            .await?;
        Ok(count)
    }

    /// Delete a user of the tenant: the caller's own account, or (admin) anyone's. Ends the
    /// user's sessions, cuts off their tokens on the feed and deletes the row in one
    /// transaction: all of it happens, or none of it and the call can be repeated. Then
    /// the user's provider tokens are revoked at their providers (best effort: after the
    /// commit, so a provider that is down or slow neither blocks nor undoes the deletion).
    pub async fn delete_user(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        user_id: &str,
        origin: &Device,
    ) -> Result<()> {
        // The provider tokens are read before the rows go and revoked once they have:
        // best effort, a provider that fails does not keep the account.
        let connections = self.sealed_connections(tenant, user_id).await;
        let event = self.event(
            AuditAction::UserDeleted,
            Some(caller),
            user_id,
            None,
            origin,
        );
        let revoking = self
            .revoking(tenant, RevokeReason::AccountDeleted)
            .with_audit(&event);
        match self.store.delete_user(revoking, user_id).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("user")),
            other => other?,
        }
        self.feed.announce();
        self.revoke_connections(tenant, connections).await;
        Ok(())
    }

    /// `NOT_FOUND` unless the tenant has this user.
    async fn existing_user(&self, tenant: &Tenant, user_id: &str) -> Result<()> {
        match self.store.user_by_id(&tenant.id, user_id).await {
            Err(StoreError::NotFound) => Err(Error::NotFound("user")),
            other => other.map(drop).map_err(Error::from),
        }
    }
}
