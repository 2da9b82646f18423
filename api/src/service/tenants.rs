//! Tenants: listing, creating and deleting them (a deleted tenant's tokens are cut off),
//! each recorded in the default tenant's audit log.

use serde_json::json;

use super::{Auth, Caller, Error, Result};
use crate::domain::{AuditAction, Device, Tenant, TenantSlug, now_ms};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;

/// An event about a tenant, recorded in the default tenant (a deleted tenant's own log goes
/// with it).
fn platform_event<'a>(
    action: AuditAction,
    caller: &Caller,
    origin: &'a Device,
    detail: serde_json::Value,
) -> AuditEvent<'a> {
    AuditEvent {
        action,
        actor: Some(caller.actor()),
        user_id: None,
        session_id: None,
        ip: origin.ip.as_deref(),
        user_agent: origin.user_agent.as_deref(),
        detail,
    }
}

impl Auth {
    /// Every tenant.
    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        Ok(self.store.tenants().await?)
    }

    /// Create a tenant.
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        slug: &str,
        name: &str,
        origin: &Device,
    ) -> Result<Tenant> {
        let slug = TenantSlug::parse(slug.trim())?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::BadInput("name must have 1 to 100 characters".into()));
        }
        let home = self.tenant(None).await?;
        let audit = platform_event(
            AuditAction::PlatformTenantCreated,
            caller,
            origin,
            json!({ "slug": slug.as_str(), "name": name }),
        );
        match self
            .store
            .create_tenant(&slug, name, &home.id, &audit)
            .await
        {
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(format!(
                "tenant {} already exists",
                slug.as_str()
            ))),
            other => Ok(other?),
        }
    }

    /// Delete a tenant with everything it owns; its tokens are refused at once.
    pub async fn delete_tenant(&self, caller: &Caller, slug: &str, origin: &Device) -> Result<()> {
        if slug == TenantSlug::DEFAULT {
            return Err(Error::Forbidden(
                "the default tenant cannot be deleted".into(),
            ));
        }
        let tenant = self.tenant(Some(slug)).await?;
        // Machine tokens are cached by verifiers for up to an hour, access tokens live for
        // their TTL: keep the cut-off for the longer of the two.
        let horizon = self.revocation_horizon().max(now_ms() / 1000 + 3600);
        let home = self.tenant(None).await?;
        let audit = platform_event(
            AuditAction::PlatformTenantDeleted,
            caller,
            origin,
            json!({ "slug": tenant.slug, "name": tenant.name }),
        );
        match self
            .store
            .delete_tenant(&tenant, horizon, &home.id, &audit)
            .await
        {
            Err(StoreError::NotFound) => return Err(Error::NotFound("tenant")),
            other => other?,
        }
        self.feed.announce();
        self.tenant_changed(slug).await;
        Ok(())
    }
}
