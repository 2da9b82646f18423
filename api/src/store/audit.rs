//! The audit log: one row per security-relevant event, per tenant.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::{Store, StoreResult};
use crate::domain::{AuditAction, AuditRecord, Millis, new_id, now_ms};

/// The head of every insert of an audit event: its columns, in the order of the values.
macro_rules! insert_audit_into {
    () => {
        "INSERT INTO audit_events (id, tenant_id, at, action, actor, user_id, session_id, ip, \
         user_agent, detail)"
    };
}
pub(super) use insert_audit_into;

/// An event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// What happened.
    pub action: AuditAction,
    /// Who did it: `user:<id>`, `token:<id>`, `system`.
    pub actor: Option<String>,
    /// The user concerned.
    pub user_id: Option<&'a str>,
    /// The session concerned.
    pub session_id: Option<&'a str>,
    /// Client IP.
    pub ip: Option<&'a str>,
    /// Client `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// Anything else, as JSON. Never secrets.
    pub detail: serde_json::Value,
}

/// What a page of the audit log shows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter<'a> {
    /// Only this action (`user.sign_in`, …).
    pub action: Option<&'a str>,
    /// Only events about this user.
    pub user_id: Option<&'a str>,
    /// After this event (`at`, `id`), newest first.
    pub after: Option<(Millis, &'a str)>,
}

fn record(row: &sqlx::any::AnyRow) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        action: row.try_get("action")?,
        actor: row.try_get("actor")?,
        user_id: row.try_get("user_id")?,
        session_id: row.try_get("session_id")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        detail: super::json_column::<serde_json::Value>(&row.try_get::<String, _>("detail")?),
    })
}

const COLUMNS: &str = "id, at, action, actor, user_id, session_id, ip, user_agent, detail";

impl Store {
    /// Record an event. Failures are logged, not raised: the audit log must not turn a
    /// completed action into an error.
    pub async fn audit(&self, tenant_id: &str, event: AuditEvent<'_>) {
        let written = match self.writer().await {
            Ok(mut writer) => insert_audit(&mut *writer, tenant_id, &event).await,
            Err(error) => Err(error.into()),
        };
        if let Err(error) = written {
            tracing::error!(error = %error, action = event.action.as_str(), "audit event not recorded");
        }
    }

    /// The tenant's latest events with this action, newest first.
    pub async fn audit_events(
        &self,
        tenant_id: &str,
        action: &str,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_events WHERE tenant_id = $1 AND action = $2 \
             ORDER BY at DESC, id DESC LIMIT $3"
        )))
        .bind(tenant_id)
        .bind(action)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record).collect()
    }

    /// Up to `limit` of the tenant's events matching `filter`, newest first (by time, then
    /// id), after `filter.after`; the same SQL on both databases (empty strings stand for
    /// "no filter").
    pub async fn audit_page(
        &self,
        tenant_id: &str,
        filter: &AuditFilter<'_>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        let (at, id) = filter.after.unwrap_or((Millis::MAX, ""));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_events WHERE tenant_id = $1 \
             AND ($2 = '' OR action = $2) AND ($3 = '' OR user_id = $3) \
             AND (at < $4 OR (at = $4 AND id < $5)) ORDER BY at DESC, id DESC LIMIT $6"
        )))
        .bind(tenant_id)
        .bind(filter.action.unwrap_or_default())
        .bind(filter.user_id.unwrap_or_default())
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record).collect()
    }

    /// Delete up to `batch` of the tenant's events older than `before`; how many went. The
    /// janitor calls it until a batch comes back short, so no statement holds locks long.
    pub async fn purge_audit_batch(
        &self,
        tenant_id: &str,
        before: Millis,
        batch: i64,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events \
             WHERE tenant_id = $1 AND at < $2 ORDER BY at LIMIT $3)",
        )
        .bind(tenant_id)
        .bind(before)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Insert an event through any executor, so that a write and its audit row can share one
/// transaction.
pub(super) async fn insert_audit<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    tenant_id: &str,
    event: &AuditEvent<'_>,
) -> StoreResult<()> {
    let query = sqlx::query(concat!(
        insert_audit_into!(),
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(new_id())
    .bind(tenant_id)
    .bind(now_ms());
    bind_event(query, event).execute(executor).await?;
    Ok(())
}

/// `query` with the event's own columns bound next, in the order of `insert_audit_into!`
/// after the id, the tenant and the time: action, actor, user, session, IP, user agent,
/// detail.
pub(super) fn bind_event<'q>(
    query: Query<'q, Any, AnyArguments>,
    event: &AuditEvent<'_>,
) -> Query<'q, Any, AnyArguments> {
    query
        .bind(event.action.as_str())
        .bind(&event.actor)
        .bind(event.user_id)
        .bind(event.session_id)
        .bind(event.ip)
        .bind(event.user_agent)
        .bind(event.detail.to_string())
}
