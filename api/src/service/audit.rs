//! The audit log: events as the service writes them (who did what to whom, from where),
//! pages of it for admins, and retention.

use super::admin_users::{decode_cursor, encode_cursor};
use super::{Auth, Caller, Result};
use crate::domain::{AuditAction, AuditRecord, Device, Tenant, now_ms};
use crate::store::audit::{AuditEvent, AuditFilter};

impl Auth {
    /// An event about `user_id` done by `actor` (the user themself when `None`), from
    /// `origin`, to be written in the transaction of the change.
    pub(super) fn event<'a>(
        &self,
        action: AuditAction,
        actor: Option<&Caller>,
        user_id: &'a str,
        session_id: Option<&'a str>,
        origin: &'a Device,
    ) -> AuditEvent<'a> {
        AuditEvent {
            action,
            actor: Some(actor.map_or_else(|| Caller::user_actor(user_id), Caller::actor)),
            user_id: Some(user_id),
            session_id,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: serde_json::json!({}),
        }
    }

    /// Record an event about `user_id`, done by the user themself, with `detail`.
    pub(super) async fn audit_detail(
        &self,
        tenant: &Tenant,
        action: AuditAction,
        user_id: &str,
        origin: &Device,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            action,
            actor: Some(Caller::user_actor(user_id)),
            user_id: Some(user_id),
            session_id: None,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail,
        };
        self.store.audit(&tenant.id, event).await;
    }

    /// Record an event about `user_id`, done by `actor` (the user themself when `None`).
    pub(super) async fn audit(
        &self,
        tenant: &Tenant,
        actor: Option<&Caller>,
        action: AuditAction,
        user_id: &str,
        session_id: Option<&str>,
        origin: &Device,
    ) {
        let event = AuditEvent {
            action,
            actor: Some(actor.map_or_else(|| Caller::user_actor(user_id), Caller::actor)),
            user_id: Some(user_id),
            session_id,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: serde_json::json!({}),
        };
        self.store.audit(&tenant.id, event).await;
    }
}

/// One page of the audit log.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// The events, newest first, each with its cursor.
    pub events: Vec<(String, AuditRecord)>,
    /// Whether more follow.
    pub has_next: bool,
}

/// Events the janitor deletes per statement.
const PURGE_BATCH: i64 = 1000;

impl Auth {
    /// A page of the tenant's audit log, newest first (admin): `first` (default 20, at most
    /// 100) after the cursor `after`, only `action` and only events about `user_id` when
    /// given.
    pub async fn audit_log(
        &self,
        tenant: &Tenant,
        first: Option<i64>,
        after: Option<&str>,
        action: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<AuditPage> {
        let limit = super::admin_users::page_size(first)?;
        let after = after.map(decode_cursor).transpose()?;
        let filter = AuditFilter {
            action: action.filter(|a| !a.is_empty()),
            user_id: user_id.filter(|u| !u.is_empty()),
            after: after.as_ref().map(|(at, id)| (*at, id.as_str())),
        };
        let mut events = self
            .store
            .audit_page(&tenant.id, &filter, limit + 1)
            .await?;
        let has_next = events.len() as i64 > limit;
        events.truncate(limit as usize);
        Ok(AuditPage {
            events: events
                .into_iter()
                .map(|e| (encode_cursor(e.at, &e.id), e))
                .collect(),
            has_next,
        })
    }

    /// Retention: delete every tenant's events older than its `auditRetentionDays`, in
    /// batches; how many went. The janitor runs it with the other housekeeping.
    pub async fn purge_audit_events(&self) -> Result<u64> {
        let mut purged = 0;
        for tenant in self.store.tenants().await? {
            let days = i64::from(tenant.settings.audit_retention_days.max(1));
            let before = now_ms() - days * 86_400_000;
            loop {
                let gone = self
                    .store
                    .purge_audit_batch(&tenant.id, before, PURGE_BATCH)
                    .await?;
                purged += gone;
                if (gone as i64) < PURGE_BATCH {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        Ok(purged)
    }
}
