//! The mail outbox: rows written in the same transaction as whatever the mail announces,
//! then claimed, sent and closed by the delivery worker ([`crate::service::mail::Mailer::run`]).
//!
//! Claiming is safe across API replicas on one PostgreSQL: a claim sets a lease
//! (`locked_until`) with a guard on the lease in the same `UPDATE`, so two workers racing
//! for a row cannot both take it (the loser re-checks the guard after the winner commits
//! and skips the row). A worker that dies mid-send leaves the lease to run out, and the row
//! is claimed again.

use sqlx::Row;

use super::{Store, StoreResult};
use crate::domain::Composed;
use crate::domain::Millis;

/// Queue a composed mail through any executor (usually the caller's transaction).
pub async fn insert_mail<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    mail: &Composed,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, tenant_id, template, recipient, message, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&mail.id)
    .bind(&mail.tenant_id)
    .bind(mail.template)
    .bind(&mail.recipient)
    .bind(&mail.sealed)
    .bind(mail.created_at)
    .execute(executor)
    .await?;
    Ok(())
}

/// A row claimed for one delivery attempt.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    /// Outbox row id (also the context the message is sealed under).
    pub id: String,
    /// Tenant it is sent for.
    pub tenant_id: String,
    /// Template name.
    pub template: String,
    /// Recipient address.
    pub recipient: String,
    /// The sealed message; `None` only in a hand-edited database.
    pub message: Option<String>,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// One outbox row as it stands (for tests and operators).
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Outbox row id.
    pub id: String,
    /// Template name.
    pub template: String,
    /// Recipient address.
    pub recipient: String,
    /// The sealed message; erased (`None`) once sent or given up.
    pub message: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// Earliest time of the next attempt.
    pub next_attempt_at: Millis,
    /// When it was sent.
    pub sent_at: Option<Millis>,
    /// When delivery was given up.
    pub failed_at: Option<Millis>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl Store {
    /// Claim up to `limit` due rows (not sent, not given up, next attempt due, no live
    /// lease) for `lease_ms`, counting the attempt. Oldest due first.
    pub async fn claim_due_mail(
        &self,
        now: Millis,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedMail>> {
        let rows = sqlx::query(
            "UPDATE mail_outbox SET locked_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM mail_outbox \
                          WHERE sent_at IS NULL AND failed_at IS NULL \
                            AND next_attempt_at <= $2 AND locked_until <= $2 \
                          ORDER BY next_attempt_at LIMIT $3) \
               AND sent_at IS NULL AND failed_at IS NULL AND locked_until <= $2 \
             RETURNING id, tenant_id, template, recipient, message, attempts",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *self.writer().await?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedMail {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    template: row.try_get("template")?,
                    recipient: row.try_get("recipient")?,
                    message: row.try_get("message")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// Record a delivery: the row is closed and its message erased.
    pub async fn mark_mail_sent(&self, id: &str, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "UPDATE mail_outbox SET sent_at = $1, message = NULL, locked_until = 0, last_error = NULL \
             WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// Make every mail that is waiting out a backoff due at `now` (the mail server answers
    /// again); how many.
    pub async fn retry_waiting_mail(&self, now: Millis) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE mail_outbox SET next_attempt_at = $1 \
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at > $1 AND attempts > 0",
        )
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// Record a failed attempt: retry at `next_attempt_at`, or with `give_up` close the row
    /// as failed and erase its message. `error` must not carry secrets.
    pub async fn mark_mail_failed(
        &self,
        id: &str,
        error: &str,
        now: Millis,
        next_attempt_at: Millis,
        give_up: bool,
    ) -> StoreResult<()> {
        let query = if give_up {
            sqlx::query(
                "UPDATE mail_outbox SET failed_at = $1, message = NULL, locked_until = 0, \
                 last_error = $2, next_attempt_at = $1 WHERE id = $3",
            )
            .bind(now)
        } else {
            sqlx::query(
                "UPDATE mail_outbox SET next_attempt_at = $1, locked_until = 0, last_error = $2 \
                 WHERE id = $3",
            )
            .bind(next_attempt_at)
        };
        query
            .bind(error)
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Delete rows sent or given up before `before`; returns how many.
    pub async fn purge_mail(&self, before: Millis) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM mail_outbox WHERE (sent_at IS NOT NULL AND sent_at < $1) \
             OR (failed_at IS NOT NULL AND failed_at < $1)",
        )
        .bind(before)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// One outbox row by id.
    pub async fn outbox_row(&self, id: &str) -> StoreResult<OutboxRow> {
        let row = sqlx::query(
            "SELECT id, template, recipient, message, attempts, next_attempt_at, sent_at, \
             failed_at, last_error FROM mail_outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(super::StoreError::NotFound)?;
        Ok(OutboxRow {
            id: row.try_get("id")?,
            template: row.try_get("template")?,
            recipient: row.try_get("recipient")?,
            message: row.try_get("message")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            sent_at: row.try_get("sent_at")?,
            failed_at: row.try_get("failed_at")?,
            last_error: row.try_get("last_error")?,
        })
    }
}
