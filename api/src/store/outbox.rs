//! The mail outbox: rows written in the same transaction as whatever the mail announces.

use super::StoreResult;
use crate::mail::Composed;

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
