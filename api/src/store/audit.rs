//! The audit log: one row per security-relevant event, per tenant.

use sqlx::Row;

use super::{Store, StoreResult};
use crate::domain::{AuditAction, Millis, new_id, now_ms};

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
    /// Anything else, as JSON. Never secrets.
    pub detail: serde_json::Value,
}

/// An event as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Event id.
    pub id: String,
    /// When.
    pub at: Millis,
    /// What.
    pub action: String,
    /// Who.
    pub actor: Option<String>,
    /// Whose.
    pub user_id: Option<String>,
}

impl Store {
    /// Record an event. Failures are logged, not raised: the audit log must not turn a
    /// completed action into an error.
    pub async fn audit(&self, tenant_id: &str, event: AuditEvent<'_>) {
        if let Err(error) = insert_audit(self.pool(), tenant_id, &event).await {
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
        let rows = sqlx::query(
            "SELECT id, at, action, actor, user_id FROM audit_events WHERE tenant_id = $1 AND action = $2 \
             ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(tenant_id)
        .bind(action)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    action: row.try_get("action")?,
                    actor: row.try_get("actor")?,
                    user_id: row.try_get("user_id")?,
                })
            })
            .collect()
    }
}

/// Insert an event through any executor, so that a write and its audit row can share one
/// transaction.
pub(super) async fn insert_audit<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    tenant_id: &str,
    event: &AuditEvent<'_>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, tenant_id, at, action, actor, user_id, session_id, ip, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(tenant_id)
    .bind(now_ms())
    .bind(event.action.as_str())
    .bind(&event.actor)
    .bind(event.user_id)
    .bind(event.session_id)
    .bind(event.ip)
    .bind(event.detail.to_string())
    .execute(executor)
    .await?;
    Ok(())
}
