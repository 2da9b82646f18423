//! One-time secrets sent by mail: sign-in codes, password resets and the codes that confirm
//! an added address (those are superseded per account, not per address). Only hashes are kept;
//! every state change is one conditional statement, so concurrent requests cannot use a
//! code twice or try it more often than allowed.

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::outbox::insert_mail;
use super::sessions::{Revoking, end_user_sessions};
use super::users::mark_verified;
use super::{Store, StoreError, StoreResult};
use crate::domain::Composed;
use crate::domain::Millis;

/// What a challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// A sign-in (or sign-up) code.
    Otp,
    /// A password reset.
    Reset,
    /// A code confirming an address added to an account (`addEmail`).
    Email,
}

impl ChallengeKind {
    /// The kind as stored.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Otp => "otp",
            Self::Reset => "reset",
            Self::Email => "email",
        }
    }
}

/// A challenge about to be opened.
#[derive(Debug, Clone)]
pub struct NewChallenge<'a> {
    /// Row id (the `challengeId` clients see for codes).
    pub id: &'a str,
    /// What it is for.
    pub kind: ChallengeKind,
    /// The normalised address it was sent to.
    pub email: &'a str,
    /// The account, when the address has one.
    pub user_id: Option<&'a str>,
    /// Keyed hash (codes) or SHA-256 (reset tokens) of the secret.
    pub secret_hash: &'a str,
    /// Wrong answers it survives.
    pub max_attempts: i64,
    /// End of its validity.
    pub expires_at: Millis,
}

/// A challenge as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Row id.
    pub id: String,
    /// The address it was sent to.
    pub email: String,
    /// The account it was sent to, if any.
    pub user_id: Option<String>,
    /// Hash of the secret.
    pub secret_hash: String,
    /// Answers tried so far, this one included.
    pub attempts: i64,
    /// Wrong answers it survives.
    pub max_attempts: i64,
}

fn challenge(row: &AnyRow) -> StoreResult<Challenge> {
    Ok(Challenge {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        user_id: row.try_get("user_id")?,
        secret_hash: row.try_get("secret_hash")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
    })
}

impl Store {
    /// Open a challenge and queue the mail that carries its secret, in one transaction;
    /// earlier open challenges of the same kind for the address are closed (superseded), by
    /// creation time (`now`), not commit order: a challenge that commits after a newer one
    /// of the address is closed at once.
    pub async fn open_challenge(
        &self,
        tenant_id: &str,
        new: &NewChallenge<'_>,
        now: Millis,
        mail: Option<&Composed>,
        audit: Option<&super::audit::AuditEvent<'_>>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        open_challenge_in(&mut tx, tenant_id, new, now, mail).await?;
        if let Some(audit) = audit {
            super::audit::insert_audit(&mut *tx, tenant_id, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Spend one attempt on an open, unexpired challenge that has attempts left, and return
    /// it; `NotFound` when there is no such challenge (unknown, expired, used, superseded or
    /// out of attempts). The attempt is counted before the answer is compared, so parallel
    /// guesses cannot exceed the limit.
    pub async fn attempt_challenge(
        &self,
        tenant_id: &str,
        kind: ChallengeKind,
        id: &str,
        now: Millis,
    ) -> StoreResult<Challenge> {
        let row = sqlx::query(
            "UPDATE challenges SET attempts = attempts + 1 \
             WHERE id = $1 AND tenant_id = $2 AND kind = $3 AND closed_at IS NULL \
             AND expires_at > $4 AND attempts < max_attempts \
             RETURNING id, email, user_id, secret_hash, attempts, max_attempts",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(&mut *self.writer().await?)
        .await?
        .ok_or(StoreError::NotFound)?;
        challenge(&row)
    }

    /// Close a challenge that is still open; false when it was closed meanwhile (by a
    /// concurrent correct answer, say).
    pub async fn close_challenge(&self, id: &str, reason: &str, now: Millis) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE challenges SET closed_at = $1, closed_reason = $2 WHERE id = $3 AND closed_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The address of an open, unexpired password reset for an account, by secret hash.
    pub async fn open_reset_email(
        &self,
        tenant_id: &str,
        secret_hash: &str,
        now: Millis,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT email FROM challenges WHERE tenant_id = $1 AND kind = 'reset' AND secret_hash = $2 \
             AND closed_at IS NULL AND expires_at > $3 AND user_id IS NOT NULL",
        )
        .bind(tenant_id)
        .bind(secret_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|row| row.try_get("email")).transpose()?)
    }

    /// Use a password-reset secret and set the new password hash in one transaction: the
    /// challenge must be open, unexpired and for an account. Every other open reset of the
    /// address is closed too, the address counts as proven, and every session of the account
    /// ends with its feed entries. Returns the user id and whether this was the address's
    /// first proof, or `NotFound`.
    pub async fn reset_password(
        &self,
        revoking: Revoking<'_>,
        secret_hash: &str,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<(String, bool)> {
        let tenant_id = revoking.tenant.id.as_str();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let row = sqlx::query(
            "UPDATE challenges SET closed_at = $1, closed_reason = 'used', attempts = attempts + 1 \
             WHERE tenant_id = $2 AND kind = 'reset' AND secret_hash = $3 AND closed_at IS NULL \
             AND expires_at > $1 AND user_id IS NOT NULL RETURNING user_id, email",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(secret_hash)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let user_id: String = row.try_get("user_id")?;
        let email: String = row.try_get("email")?;
        sqlx::query(
            "UPDATE challenges SET closed_at = $1, closed_reason = 'superseded' \
             WHERE tenant_id = $2 AND kind = 'reset' AND email = $3 AND closed_at IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(&email)
        .execute(&mut *tx)
        .await?;
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND tenant_id = $4",
        )
        .bind(password_hash)
        .bind(now)
        .bind(&user_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM sign_in_failures WHERE tenant_id = $1 AND email = $2")
            .bind(tenant_id)
            .bind(&email)
            .execute(&mut *tx)
            .await?;
        let first_proof = mark_verified(&mut tx, tenant_id, &user_id, &email).await?;
        end_user_sessions(&mut tx, revoking, &user_id).await?;
        tx.commit().await?;
        Ok((user_id, first_proof))
    }

    /// Drop up to `batch` challenges that ended more than a day before `now`; how many.
    pub async fn purge_challenges(&self, now: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM challenges WHERE id IN (SELECT id FROM challenges WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(now - 86_400_000)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}

/// [`Store::open_challenge`] inside the caller's transaction, for flows that write more
/// with it (an added address and its code).
pub(crate) async fn open_challenge_in(
    tx: &mut AnyConnection,
    tenant_id: &str,
    new: &NewChallenge<'_>,
    now: Millis,
    mail: Option<&Composed>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE challenges SET closed_at = $1, closed_reason = 'superseded' \
         WHERE tenant_id = $2 AND kind = $3 AND email = $4 AND closed_at IS NULL \
         AND created_at <= $1 AND (kind <> 'email' OR user_id = $5)",
    )
    .bind(now)
    .bind(tenant_id)
    .bind(new.kind.as_str())
    .bind(new.email)
    .bind(new.user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO challenges (id, tenant_id, kind, email, user_id, secret_hash, attempts, \
         max_attempts, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9)",
    )
    .bind(new.id)
    .bind(tenant_id)
    .bind(new.kind.as_str())
    .bind(new.email)
    .bind(new.user_id)
    .bind(new.secret_hash)
    .bind(new.max_attempts)
    .bind(now)
    .bind(new.expires_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE challenges SET closed_at = $1, closed_reason = 'superseded' \
         WHERE id = $2 AND EXISTS (SELECT 1 FROM challenges newer WHERE newer.tenant_id = $3 \
         AND newer.kind = $4 AND newer.email = $5 AND newer.created_at > $1 \
         AND (newer.kind <> 'email' OR newer.user_id = $6))",
    )
    .bind(now)
    .bind(new.id)
    .bind(tenant_id)
    .bind(new.kind.as_str())
    .bind(new.email)
    .bind(new.user_id)
    .execute(&mut *tx)
    .await?;
    if let Some(mail) = mail {
        insert_mail(&mut *tx, mail).await?;
    }
    Ok(())
}
