//! Second factors: the TOTP secret of a user (sealed by the service), recovery codes (keyed
//! hashes), and the sign-ins waiting for a factor (`mfa_challenges`, by the SHA-256 of their
//! mfaToken). Every spend is one conditional statement, so two requests racing with the same
//! code, recovery code or mfaToken cannot both win.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, insert_audit};
use super::outbox::insert_mail;
use super::{Store, StoreError, StoreResult, conflict_on_unique};
use crate::domain::{Composed, Millis, new_id};

/// A user's TOTP enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRow {
    /// Row id (the context its secret is sealed under).
    pub id: String,
    /// The sealed secret.
    pub secret: String,
    /// When the first code switched it on; `None` while the enrolment is pending.
    pub confirmed_at: Option<Millis>,
    /// The last accepted time step.
    pub last_step: i64,
}

/// Which second factors a user has switched on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactorCounts {
    /// A confirmed authenticator app.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes: i64,
    /// Registered passkeys.
    pub passkeys: i64,
}

/// The columns of [`FactorCounts`] for the user `u` of the tenant `$1`, in a statement
/// that reads `users u`.
macro_rules! factor_columns {
    () => {
        "(SELECT COUNT(*) FROM mfa_totp t WHERE t.tenant_id = $1 AND t.user_id = u.id \
           AND t.confirmed_at IS NOT NULL) AS factor_totp, \
         (SELECT COUNT(*) FROM mfa_recovery_codes c WHERE c.tenant_id = $1 AND c.user_id = u.id \
           AND c.used_at IS NULL) AS factor_codes, \
         (SELECT COUNT(*) FROM passkeys p WHERE p.tenant_id = $1 AND p.user_id = u.id) AS factor_passkeys"
    };
}
pub(super) use factor_columns;

/// The [`FactorCounts`] of a row read with [`factor_columns`].
pub(super) fn factor_counts(row: &sqlx::any::AnyRow) -> StoreResult<FactorCounts> {
    Ok(FactorCounts {
        totp: row.try_get::<i64, _>("factor_totp")? > 0,
        recovery_codes: row.try_get("factor_codes")?,
        passkeys: row.try_get("factor_passkeys")?,
    })
}

/// What a pending sign-in is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaPurpose {
    /// A second factor (`verifyMfa`).
    Verify,
    /// An enrolment the tenant demands (`startTotpEnrollment` / `confirmTotpEnrollment`).
    Enroll,
}

impl MfaPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Enroll => "enroll",
        }
    }

    fn parse(name: &str) -> Self {
        if name == "enroll" {
            Self::Enroll
        } else {
            Self::Verify
        }
    }
}

/// A pending sign-in about to be stored.
#[derive(Debug, Clone)]
pub struct NewMfaChallenge<'a> {
    /// Row id.
    pub id: &'a str,
    /// The user whose first factor proved right.
    pub user_id: &'a str,
    /// SHA-256 of the mfaToken.
    pub token_hash: &'a str,
    /// What it waits for.
    pub purpose: MfaPurpose,
    /// The sealed sign-in to finish.
    pub pending: &'a str,
    /// Wrong answers it survives (the last one ends it).
    pub max_attempts: i64,
    /// End of its validity.
    pub expires_at: Millis,
}

/// A pending sign-in as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// Row id.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// What it waits for.
    pub purpose: MfaPurpose,
    /// The sealed sign-in to finish.
    pub pending: String,
    /// Answers tried so far, this one included.
    pub attempts: i64,
    /// Answers allowed.
    pub max_attempts: i64,
    /// End of its validity.
    pub expires_at: Millis,
}

fn challenge(row: &AnyRow) -> StoreResult<MfaChallenge> {
    Ok(MfaChallenge {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        purpose: MfaPurpose::parse(&row.try_get::<String, _>("purpose")?),
        pending: row.try_get("pending")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        expires_at: row.try_get("expires_at")?,
    })
}

macro_rules! challenge_columns {
    () => {
        "id, user_id, purpose, pending, attempts, max_attempts, expires_at"
    };
}

impl Store {
    /// The user's TOTP enrolment, confirmed or pending.
    pub async fn totp(&self, tenant_id: &str, user_id: &str) -> StoreResult<Option<TotpRow>> {
        let row = sqlx::query(
            "SELECT id, secret, confirmed_at, last_step FROM mfa_totp \
             WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(TotpRow {
                id: row.try_get("id")?,
                secret: row.try_get("secret")?,
                confirmed_at: row.try_get("confirmed_at")?,
                last_step: row.try_get("last_step")?,
            })
        })
        .transpose()
    }

    /// Which factors the user has switched on, in one read.
    pub async fn factor_counts(&self, tenant_id: &str, user_id: &str) -> StoreResult<FactorCounts> {
        let row = sqlx::query(concat!(
            "SELECT ",
            factor_columns!(),
            " FROM users u WHERE u.tenant_id = $1 AND u.id = $2"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .fetch_one(self.pool())
        .await?;
        factor_counts(&row)
    }

    /// Store a pending enrolment (replacing an earlier pending one); `Conflict("totp")` when
    /// the user has a confirmed one.
    pub async fn put_pending_totp(
        &self,
        tenant_id: &str,
        user_id: &str,
        id: &str,
        sealed_secret: &str,
        now: Millis,
        audit: &AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(
            "DELETE FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NULL",
        )
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO mfa_totp (id, tenant_id, user_id, secret, created_at, last_step) \
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(user_id)
        .bind(sealed_secret)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique("totp"))?;
        insert_audit(&mut *tx, tenant_id, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Switch a pending enrolment on with the step of its first code, replacing the user's
    /// recovery codes by `code_hashes`, with its audit event and notice; false when the
    /// enrolment is gone or already confirmed (a concurrent confirmation won).
    #[allow(clippy::too_many_arguments)]
    pub async fn confirm_totp(
        &self,
        tenant_id: &str,
        user_id: &str,
        id: &str,
        step: i64,
        code_hashes: &[String],
        now: Millis,
        audit: &AuditEvent<'_>,
        mail: Option<&Composed>,
    ) -> StoreResult<bool> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let done = sqlx::query(
            "UPDATE mfa_totp SET confirmed_at = $1, last_step = $2 \
             WHERE id = $3 AND tenant_id = $4 AND user_id = $5 AND confirmed_at IS NULL \
             AND last_step < $2",
        )
        .bind(now)
        .bind(step)
        .bind(id)
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        replace_codes(&mut tx, tenant_id, user_id, code_hashes, now).await?;
        insert_audit(&mut *tx, tenant_id, audit).await?;
        if let Some(mail) = mail {
            insert_mail(&mut *tx, mail).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Accept a code of time step `step` for the user's confirmed TOTP: true when no code
    /// of this or a later step was accepted before (one conditional UPDATE, so a code
    /// presented twice at once is accepted once).
    pub async fn spend_totp_step(
        &self,
        tenant_id: &str,
        user_id: &str,
        step: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE mfa_totp SET last_step = $1 WHERE tenant_id = $2 AND user_id = $3 \
             AND confirmed_at IS NOT NULL AND last_step < $1",
        )
        .bind(step)
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spend an unused recovery code of the user by its hash; true when this call spent it.
    pub async fn spend_recovery_code(
        &self,
        tenant_id: &str,
        user_id: &str,
        code_hash: &str,
        now: Millis,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE mfa_recovery_codes SET used_at = $1 WHERE tenant_id = $2 AND user_id = $3 \
             AND code_hash = $4 AND used_at IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(user_id)
        .bind(code_hash)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replace every recovery code of the user, with the audit event, in one transaction.
    pub async fn replace_recovery_codes(
        &self,
        tenant_id: &str,
        user_id: &str,
        code_hashes: &[String],
        now: Millis,
        audit: &AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        replace_codes(&mut tx, tenant_id, user_id, code_hashes, now).await?;
        insert_audit(&mut *tx, tenant_id, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove the user's confirmed TOTP (and, with `with_codes`, the recovery codes), with
    /// the audit event and notice; false when there was none.
    pub async fn delete_totp(
        &self,
        tenant_id: &str,
        user_id: &str,
        with_codes: bool,
        audit: &AuditEvent<'_>,
        mail: Option<&Composed>,
    ) -> StoreResult<bool> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let done = sqlx::query(
            "DELETE FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NOT NULL",
        )
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if with_codes {
            sqlx::query("DELETE FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        insert_audit(&mut *tx, tenant_id, audit).await?;
        if let Some(mail) = mail {
            insert_mail(&mut *tx, mail).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Remove every TOTP enrolment and recovery code of the user and end their pending
    /// sign-ins (an admin reset), with the audit event, and the notice when anything was
    /// removed (`also_removed`: passkeys, by the caller); whether a confirmed factor, an
    /// unused code or a passkey was removed.
    pub async fn reset_mfa(
        &self,
        tenant_id: &str,
        user_id: &str,
        now: Millis,
        also_removed: bool,
        audit: &AuditEvent<'_>,
        mail: Option<&Composed>,
    ) -> StoreResult<bool> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let totp = sqlx::query(
            "DELETE FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NOT NULL",
        )
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let codes = sqlx::query(
            "DELETE FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL",
        )
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE mfa_challenges SET used_at = $1 WHERE tenant_id = $2 AND user_id = $3 \
             AND used_at IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut *tx, tenant_id, audit).await?;
        let removed = also_removed || totp + codes > 0;
        if removed && let Some(mail) = mail {
            insert_mail(&mut *tx, mail).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Store a pending sign-in with its audit event.
    pub async fn open_mfa_challenge(
        &self,
        tenant_id: &str,
        new: &NewMfaChallenge<'_>,
        now: Millis,
        audit: &AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(
            "INSERT INTO mfa_challenges (id, tenant_id, user_id, token_hash, purpose, pending, \
             attempts, max_attempts, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9)",
        )
        .bind(new.id)
        .bind(tenant_id)
        .bind(new.user_id)
        .bind(new.token_hash)
        .bind(new.purpose.as_str())
        .bind(new.pending)
        .bind(new.max_attempts)
        .bind(now)
        .bind(new.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut *tx, tenant_id, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spend one attempt of an unused, unexpired pending sign-in of the tenant that has
    /// attempts left, by its token hash (counted before the answer is compared, so parallel
    /// guesses cannot exceed the limit); `NotFound` when there is none.
    pub async fn attempt_mfa_challenge(
        &self,
        tenant_id: &str,
        token_hash: &str,
        now: Millis,
    ) -> StoreResult<MfaChallenge> {
        let row = sqlx::query(concat!(
            "UPDATE mfa_challenges SET attempts = attempts + 1 \
             WHERE token_hash = $1 AND tenant_id = $2 AND used_at IS NULL AND expires_at > $3 \
             AND attempts < max_attempts RETURNING ",
            challenge_columns!()
        ))
        .bind(token_hash)
        .bind(tenant_id)
        .bind(now)
        .fetch_optional(&mut *self.writer().await?)
        .await?
        .ok_or(StoreError::NotFound)?;
        challenge(&row)
    }

    /// An unused, unexpired pending sign-in with attempts left, without spending one (for
    /// `startTotpEnrollment`, which checks no secret); `NotFound` when there is none.
    pub async fn open_mfa_challenge_by_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
        now: Millis,
    ) -> StoreResult<MfaChallenge> {
        let row = sqlx::query(concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM mfa_challenges \
             WHERE token_hash = $1 AND tenant_id = $2 AND used_at IS NULL AND expires_at > $3 \
             AND attempts < max_attempts"
        ))
        .bind(token_hash)
        .bind(tenant_id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        challenge(&row)
    }

    /// Whether an unusable pending sign-in of the tenant ran out of attempts (rather than
    /// being unknown, expired or used); the user it was for, if so.
    pub async fn exhausted_mfa_challenge(
        &self,
        tenant_id: &str,
        token_hash: &str,
        now: Millis,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT user_id FROM mfa_challenges WHERE token_hash = $1 AND tenant_id = $2 \
             AND used_at IS NULL AND expires_at > $3 AND attempts >= max_attempts",
        )
        .bind(token_hash)
        .bind(tenant_id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|row| row.try_get("user_id")).transpose()?)
    }

    /// Use a pending sign-in: true when this call did (it was unused).
    pub async fn close_mfa_challenge(&self, id: &str, now: Millis) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE mfa_challenges SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *self.writer().await?)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forget the counted attempts under `key` (a success ends the lockout's count).
    pub async fn forget_attempts(&self, tenant_id: &str, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE tenant_id = $1 AND email = $2")
            .bind(tenant_id)
            .bind(key)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Drop up to `batch` pending sign-ins that ended more than a day before `now`; how
    /// many.
    pub async fn purge_mfa_challenges(&self, now: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM mfa_challenges WHERE id IN (SELECT id FROM mfa_challenges \
             WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(now - 86_400_000)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}

async fn replace_codes(
    tx: &mut sqlx::AnyConnection,
    tenant_id: &str,
    user_id: &str,
    code_hashes: &[String],
    now: Millis,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for hash in code_hashes {
        sqlx::query(
            "INSERT INTO mfa_recovery_codes (id, tenant_id, user_id, code_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id())
        .bind(tenant_id)
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
