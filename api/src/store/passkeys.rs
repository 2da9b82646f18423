//! Passkeys and their ceremonies. A credential is found by its id within a tenant only; every
//! change that matters to sign-in (using a challenge, counting a signature, deleting a
//! credential) is one conditional statement, so two concurrent requests cannot both use a
//! challenge, and a deleted credential cannot complete a sign-in that was under way.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, insert_audit};
use super::outbox::insert_mail;
use super::{Store, StoreError, StoreResult, conflict_on_unique};
use crate::domain::{Composed, Millis, Passkey};

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// A signed-in user registers a passkey.
    Registration,
    /// Sign-in with a passkey alone (discoverable credential, no user named).
    SignIn,
    /// A passkey as the second factor of a sign-in under way.
    SecondFactor,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::SignIn => "sign_in",
            Self::SecondFactor => "second_factor",
        }
    }
}

/// A ceremony about to start.
#[derive(Debug, Clone)]
pub struct NewCeremony<'a> {
    /// Row id (the `challengeId` of a passkey sign-in).
    pub id: &'a str,
    /// What it is for.
    pub kind: CeremonyKind,
    /// The user, for a registration or a second factor.
    pub user_id: Option<&'a str>,
    /// The challenge, base64url, as the browser will sign it in `clientDataJSON`.
    pub challenge: &'a str,
    /// webauthn-rs's state, JSON.
    pub state: &'a str,
    /// End of its validity.
    pub expires_at: Millis,
}

/// A ceremony taken (and so ended) for its finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenCeremony {
    /// The user it was started for, if any.
    pub user_id: Option<String>,
    /// The challenge.
    pub challenge: String,
    /// webauthn-rs's state, JSON.
    pub state: String,
}

/// A passkey about to be stored.
#[derive(Debug, Clone)]
pub struct NewPasskey<'a> {
    /// Row id.
    pub id: &'a str,
    /// The owner.
    pub user_id: &'a str,
    /// Credential id, base64url.
    pub credential_id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// webauthn-rs's record of it, JSON.
    pub passkey: &'a str,
    /// Whether it may be synced.
    pub backup_eligible: bool,
    /// Whether it is synced.
    pub backed_up: bool,
    /// Registration time.
    pub created_at: Millis,
}

/// A stored passkey with what signing in with it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// The record.
    pub record: Passkey,
    /// webauthn-rs's record, JSON.
    pub passkey: String,
    /// The last sign counter seen.
    pub sign_count: i64,
}

/// A signature counted: the passkey's new state after a verified assertion.
#[derive(Debug, Clone)]
pub struct PasskeyUse<'a> {
    /// Row id.
    pub id: &'a str,
    /// The sign counter the assertion carried (0: the authenticator keeps none).
    pub sign_count: i64,
    /// webauthn-rs's updated record, JSON.
    pub passkey: &'a str,
    /// Backup state as now reported.
    pub backed_up: bool,
    /// Backup eligibility as now reported.
    pub backup_eligible: bool,
    /// When.
    pub now: Millis,
}

const COLUMNS: &str = "id, user_id, credential_id, name, backup_eligible, backed_up, created_at, \
                       last_used_at, passkey, sign_count";

fn record(row: &AnyRow) -> StoreResult<Passkey> {
    Ok(Passkey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        credential_id: row.try_get("credential_id")?,
        name: row.try_get("name")?,
        backup_eligible: row.try_get::<i64, _>("backup_eligible")? != 0,
        backed_up: row.try_get::<i64, _>("backed_up")? != 0,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

fn stored(row: &AnyRow) -> StoreResult<StoredPasskey> {
    Ok(StoredPasskey {
        record: record(row)?,
        passkey: row.try_get("passkey")?,
        sign_count: row.try_get("sign_count")?,
    })
}

impl Store {
    /// The user's passkeys, oldest first, with their webauthn-rs records.
    pub async fn passkeys(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<StoredPasskey>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM passkeys WHERE tenant_id = $1 AND user_id = $2 \
             ORDER BY created_at, id"
        )))
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(stored).collect()
    }

    /// The passkey with this credential id in the tenant, if any.
    pub async fn passkey_by_credential(
        &self,
        tenant_id: &str,
        credential_id: &str,
    ) -> StoreResult<Option<StoredPasskey>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM passkeys WHERE tenant_id = $1 AND credential_id = $2"
        )))
        .bind(tenant_id)
        .bind(credential_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(stored).transpose()
    }

    /// Store a registered passkey with its audit event and the owner's notice, in one
    /// transaction; `Conflict("passkey")` when the tenant has the credential already.
    pub async fn add_passkey(
        &self,
        tenant_id: &str,
        new: &NewPasskey<'_>,
        mail: Option<&Composed>,
        event: &AuditEvent<'_>,
    ) -> StoreResult<Passkey> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO passkeys (id, tenant_id, user_id, credential_id, name, passkey, \
             sign_count, backup_eligible, backed_up, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9) RETURNING {COLUMNS}"
        )))
        .bind(new.id)
        .bind(tenant_id)
        .bind(new.user_id)
        .bind(new.credential_id)
        .bind(new.name)
        .bind(new.passkey)
        .bind(i64::from(new.backup_eligible))
        .bind(i64::from(new.backed_up))
        .bind(new.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on_unique("passkey"))?;
        let passkey = record(&row)?;
        if let Some(mail) = mail {
            insert_mail(&mut *tx, mail).await?;
        }
        insert_audit(&mut *tx, tenant_id, event).await?;
        tx.commit().await?;
        Ok(passkey)
    }

    /// Rename one of the user's passkeys; `NotFound` when the user has none with this id.
    pub async fn rename_passkey(
        &self,
        tenant_id: &str,
        user_id: &str,
        id: &str,
        name: &str,
        event: &AuditEvent<'_>,
    ) -> StoreResult<Passkey> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE passkeys SET name = $1 WHERE tenant_id = $2 AND user_id = $3 AND id = $4 \
             RETURNING {COLUMNS}"
        )))
        .bind(name)
        .bind(tenant_id)
        .bind(user_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let passkey = record(&row)?;
        insert_audit(&mut *tx, tenant_id, event).await?;
        tx.commit().await?;
        Ok(passkey)
    }

    /// Delete one of the user's passkeys with its audit event and the owner's notice;
    /// `NotFound` when the user has none with this id.
    pub async fn delete_passkey(
        &self,
        tenant_id: &str,
        user_id: &str,
        id: &str,
        mail: Option<&Composed>,
        event: &AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let done =
            sqlx::query("DELETE FROM passkeys WHERE tenant_id = $1 AND user_id = $2 AND id = $3")
                .bind(tenant_id)
                .bind(user_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        if let Some(mail) = mail {
            insert_mail(&mut *tx, mail).await?;
        }
        insert_audit(&mut *tx, tenant_id, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Count a verified signature: the passkey's new record, counter and backup state, when
    /// the passkey still exists and the counter moved forward (or the authenticator keeps
    /// none, 0). False otherwise: deleted meanwhile, or a counter that did not grow, which
    /// means two signatures raced or the credential was cloned.
    pub async fn use_passkey(&self, tenant_id: &str, used: &PasskeyUse<'_>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE passkeys SET passkey = $1, sign_count = $2, backed_up = $3, \
             backup_eligible = $4, last_used_at = $5 \
             WHERE tenant_id = $6 AND id = $7 AND ($2 = 0 OR sign_count < $2)",
        )
        .bind(used.passkey)
        .bind(used.sign_count)
        .bind(i64::from(used.backed_up))
        .bind(i64::from(used.backup_eligible))
        .bind(used.now)
        .bind(tenant_id)
        .bind(used.id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Record a ceremony's state until its finish.
    pub async fn open_ceremony(
        &self,
        tenant_id: &str,
        new: &NewCeremony<'_>,
        now: Millis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO passkey_challenges (id, tenant_id, user_id, kind, challenge, state, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new.id)
        .bind(tenant_id)
        .bind(new.user_id)
        .bind(new.kind.as_str())
        .bind(new.challenge)
        .bind(new.state)
        .bind(now)
        .bind(new.expires_at)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// Take (delete and return) an unexpired ceremony of `kind` by id; `None` when there is
    /// none: unknown, expired, or already taken by another request.
    pub async fn take_ceremony(
        &self,
        tenant_id: &str,
        kind: CeremonyKind,
        id: &str,
        now: Millis,
    ) -> StoreResult<Option<TakenCeremony>> {
        let row = sqlx::query(
            "DELETE FROM passkey_challenges WHERE tenant_id = $1 AND kind = $2 AND id = $3 \
             AND expires_at > $4 RETURNING user_id, challenge, state",
        )
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        row.map(|row| taken(&row)).transpose()
    }

    /// Take (delete and return) the user's unexpired ceremony of `kind` with this
    /// challenge; `None` when there is none.
    pub async fn take_ceremony_by_challenge(
        &self,
        tenant_id: &str,
        kind: CeremonyKind,
        user_id: &str,
        challenge: &str,
        now: Millis,
    ) -> StoreResult<Option<TakenCeremony>> {
        let row = sqlx::query(
            "DELETE FROM passkey_challenges WHERE tenant_id = $1 AND kind = $2 AND user_id = $3 \
             AND challenge = $4 AND expires_at > $5 RETURNING user_id, challenge, state",
        )
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(user_id)
        .bind(challenge)
        .bind(now)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        row.map(|row| taken(&row)).transpose()
    }

    /// An unexpired ceremony of `kind` by id, left in place (a second factor may be tried
    /// again until its sign-in ends); [`Store::end_ceremony`] ends it.
    pub async fn ceremony(
        &self,
        tenant_id: &str,
        kind: CeremonyKind,
        id: &str,
        now: Millis,
    ) -> StoreResult<Option<TakenCeremony>> {
        let row = sqlx::query(
            "SELECT user_id, challenge, state FROM passkey_challenges WHERE tenant_id = $1 \
             AND kind = $2 AND id = $3 AND expires_at > $4",
        )
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| taken(&row)).transpose()
    }

    /// End a ceremony; false when it was ended already (by a concurrent request).
    pub async fn end_ceremony(&self, tenant_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM passkey_challenges WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Delete every passkey of a user (an admin's reset of their factors); how many went.
    pub async fn delete_user_passkeys(&self, tenant_id: &str, user_id: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM passkeys WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }

    /// Drop up to `batch` ceremonies past their lifetime (the janitor); how many.
    pub async fn purge_ceremonies(&self, now: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM passkey_challenges WHERE id IN (SELECT id FROM passkey_challenges \
             WHERE expires_at <= $1 LIMIT $2)",
        )
        .bind(now)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}

fn taken(row: &AnyRow) -> StoreResult<TakenCeremony> {
    Ok(TakenCeremony {
        user_id: row.try_get("user_id")?,
        challenge: row.try_get("challenge")?,
        state: row.try_get("state")?,
    })
}
