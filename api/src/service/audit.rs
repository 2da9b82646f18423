//! The audit log as the service writes it: who did what to whom, from where.

use super::{Auth, Caller};
use crate::domain::{AuditAction, Device, Tenant};
use crate::store::audit::AuditEvent;

impl Auth {
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
            detail: serde_json::json!({}),
        };
        self.store.audit(&tenant.id, event).await;
    }
}
