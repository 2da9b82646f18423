//! What a user changes about themself: name, avatar and metadata, and their addresses
//! (added ones pending until confirmed, removed ones remembered as previous, one primary).
//! Each change commits with its audit event and, where mail goes out, with the mail.

use sqlx::AnyConnection;
use sqlx::Row;

use super::audit::{AuditEvent, insert_audit};
use super::challenges::{Challenge, ChallengeKind, NewChallenge, open_challenge_in};
use super::outbox::insert_mail;
use super::{Store, StoreError, StoreResult, conflict_on_unique};
use crate::domain::{Composed, EmailState, Millis, new_id, now_ms};

/// A user's profile fields after a change.
#[derive(Debug, Clone)]
pub struct ProfileFields<'a> {
    /// First name.
    pub name_first: Option<&'a str>,
    /// Last name.
    pub name_last: Option<&'a str>,
    /// Display name.
    pub name_display: Option<&'a str>,
    /// Avatar data URL.
    pub avatar: Option<&'a str>,
    /// Metadata object.
    pub metadata: &'a serde_json::Value,
}

/// Where an address stands for one account, and elsewhere in the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressStanding {
    /// Its state in this account (active wins over pending over previous); `None` if the
    /// account never had it.
    pub own: Option<EmailState>,
    /// Whether it is the account's primary address.
    pub primary: bool,
    /// Whether another account of the tenant holds it active.
    pub elsewhere: bool,
}

impl Store {
    /// Write a user's profile fields and the audit events of the change in one transaction.
    pub async fn update_profile(
        &self,
        tenant_id: &str,
        user_id: &str,
        fields: &ProfileFields<'_>,
        events: &[AuditEvent<'_>],
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET name_first = $1, name_last = $2, name_display = $3, avatar = $4, \
             metadata = $5, updated_at = $6 WHERE tenant_id = $7 AND id = $8",
        )
        .bind(fields.name_first)
        .bind(fields.name_last)
        .bind(fields.name_display)
        .bind(fields.avatar)
        .bind(fields.metadata.to_string())
        .bind(now_ms())
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        for event in events {
            insert_audit(&mut *tx, tenant_id, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Where `email` stands for the user and in the rest of the tenant.
    pub async fn address_standing(
        &self,
        tenant_id: &str,
        user_id: &str,
        email: &str,
    ) -> StoreResult<AddressStanding> {
        let rows = sqlx::query(
            "SELECT user_id, state, is_primary FROM user_emails WHERE tenant_id = $1 AND email = $2",
        )
        .bind(tenant_id)
        .bind(email)
        .fetch_all(self.pool())
        .await?;
        let mut standing = AddressStanding {
            own: None,
            primary: false,
            elsewhere: false,
        };
        let rank = |state: Option<EmailState>| match state {
            Some(EmailState::Active) => 3,
            Some(EmailState::Pending) => 2,
            Some(EmailState::Previous) => 1,
            None => 0,
        };
        for row in &rows {
            let owner: String = row.try_get("user_id")?;
            let state = EmailState::parse(&row.try_get::<String, _>("state")?);
            if owner != user_id {
                standing.elsewhere |= state == Some(EmailState::Active);
                continue;
            }
            if rank(state) > rank(standing.own) {
                standing.own = state;
            }
            standing.primary |=
                state == Some(EmailState::Active) && row.try_get::<i64, _>("is_primary")? != 0;
        }
        Ok(standing)
    }

    /// Add `email` to the user as pending (or refresh its pending row) and open the code
    /// that confirms it, with its mail and audit event, in one transaction. Earlier codes for
    /// the same address and account stop working.
    pub async fn add_pending_email(
        &self,
        tenant_id: &str,
        challenge: &NewChallenge<'_>,
        now: Millis,
        mail: &Composed,
        event: &AuditEvent<'_>,
    ) -> StoreResult<()> {
        let user_id = challenge.user_id.ok_or(StoreError::NotFound)?;
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(
            "DELETE FROM user_emails WHERE tenant_id = $1 AND user_id = $2 AND email = $3 \
             AND state = 'pending'",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(challenge.email)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO user_emails (id, tenant_id, user_id, email, state, is_primary, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', 0, $5)",
        )
        .bind(new_id())
        .bind(tenant_id)
        .bind(user_id)
        .bind(challenge.email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        open_challenge_in(&mut tx, tenant_id, challenge, now, Some(mail)).await?;
        insert_audit(&mut *tx, tenant_id, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spend one attempt on the open, unexpired code confirming `email` for the user, and
    /// return it; `NotFound` when there is none (never sent, expired, used, superseded or
    /// out of attempts). The attempt is counted before the code is compared.
    pub async fn attempt_email_challenge(
        &self,
        tenant_id: &str,
        user_id: &str,
        email: &str,
        now: Millis,
    ) -> StoreResult<Challenge> {
        let row = sqlx::query(
            "UPDATE challenges SET attempts = attempts + 1 \
             WHERE id = (SELECT id FROM challenges WHERE tenant_id = $1 AND kind = $2 \
             AND user_id = $3 AND email = $4 AND closed_at IS NULL AND expires_at > $5 \
             AND attempts < max_attempts ORDER BY created_at DESC LIMIT 1) \
             AND closed_at IS NULL AND attempts < max_attempts \
             RETURNING id, email, user_id, secret_hash, attempts, max_attempts",
        )
        .bind(tenant_id)
        .bind(ChallengeKind::Email.as_str())
        .bind(user_id)
        .bind(email)
        .bind(now)
        .fetch_optional(&mut *self.writer().await?)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(Challenge {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            user_id: row.try_get("user_id")?,
            secret_hash: row.try_get("secret_hash")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
        })
    }

    /// Confirm a pending address with its (right) code: the code is used, the address
    /// becomes active and proven, any previous row of it in the account goes, all with the
    /// audit event in one transaction. `Conflict("email")` when another account made the
    /// address active meanwhile (the unique index says so), `NotFound` when the code was
    /// used meanwhile or the address is no longer pending; nothing is written then.
    pub async fn confirm_email(
        &self,
        tenant_id: &str,
        challenge_id: &str,
        user_id: &str,
        email: &str,
        event: &AuditEvent<'_>,
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let closed = sqlx::query(
            "UPDATE challenges SET closed_at = $1, closed_reason = 'used' WHERE id = $2 AND closed_at IS NULL",
        )
        .bind(now)
        .bind(challenge_id)
        .execute(&mut *tx)
        .await?;
        if closed.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "DELETE FROM user_emails WHERE tenant_id = $1 AND user_id = $2 AND email = $3 \
             AND state = 'previous'",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(email)
        .execute(&mut *tx)
        .await?;
        let activated = sqlx::query(
            "UPDATE user_emails SET state = 'active', verified_at = $1 \
             WHERE tenant_id = $2 AND user_id = $3 AND email = $4 AND state = 'pending'",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(user_id)
        .bind(email)
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique("email"))?;
        if activated.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut *tx, tenant_id, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove an address of the user that is not the primary one: an active one becomes
    /// previous (replacing an older previous row of it), a pending one goes with its open
    /// codes. The notice `mail` (to the removed address) and the audit event commit with it.
    /// `NotFound` when the account has no such active or pending non-primary address.
    pub async fn remove_email(
        &self,
        tenant_id: &str,
        user_id: &str,
        email: &str,
        mail: Option<&Composed>,
        event: &AuditEvent<'_>,
    ) -> StoreResult<EmailState> {
        let now = now_ms();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let row = sqlx::query(
            "SELECT id, state FROM user_emails WHERE tenant_id = $1 AND user_id = $2 AND email = $3 \
             AND is_primary = 0 AND state IN ('active', 'pending') ORDER BY state LIMIT 1",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(email)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let id: String = row.try_get("id")?;
        let state =
            EmailState::parse(&row.try_get::<String, _>("state")?).ok_or(StoreError::NotFound)?;
        if state == EmailState::Pending {
            delete_row(&mut tx, &id).await?;
            close_email_codes(&mut tx, tenant_id, user_id, email, now).await?;
        } else {
            sqlx::query(
                "DELETE FROM user_emails WHERE tenant_id = $1 AND user_id = $2 AND email = $3 \
                 AND state = 'previous'",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(email)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE user_emails SET state = 'previous' WHERE id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            if let Some(mail) = mail {
                insert_mail(&mut *tx, mail).await?;
            }
        }
        insert_audit(&mut *tx, tenant_id, event).await?;
        tx.commit().await?;
        Ok(state)
    }

    /// Make an active address of the user the primary one, with the notice `mail` (to the
    /// old primary) and the audit event in one transaction; `NotFound` when the account has
    /// no such active address.
    pub async fn set_primary_email(
        &self,
        tenant_id: &str,
        user_id: &str,
        email: &str,
        mail: Option<&Composed>,
        event: &AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(
            "UPDATE user_emails SET is_primary = 0 WHERE tenant_id = $1 AND user_id = $2 AND email <> $3",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(email)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE user_emails SET is_primary = 1 WHERE tenant_id = $1 AND user_id = $2 \
             AND email = $3 AND state = 'active'",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(email)
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
}

async fn delete_row(tx: &mut AnyConnection, id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM user_emails WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn close_email_codes(
    tx: &mut AnyConnection,
    tenant_id: &str,
    user_id: &str,
    email: &str,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE challenges SET closed_at = $1, closed_reason = 'superseded' \
         WHERE tenant_id = $2 AND kind = $3 AND user_id = $4 AND email = $5 AND closed_at IS NULL",
    )
    .bind(now)
    .bind(tenant_id)
    .bind(ChallengeKind::Email.as_str())
    .bind(user_id)
    .bind(email)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
