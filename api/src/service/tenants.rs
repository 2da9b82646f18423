//! Tenants: listing, creating and deleting them (a deleted tenant's tokens are cut off).

use super::{Auth, Error, Result};
use crate::domain::{Tenant, TenantSlug, now_ms};
use crate::store::StoreError;

impl Auth {
    /// Every tenant.
    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        Ok(self.store.tenants().await?)
    }

    /// Create a tenant.
    pub async fn create_tenant(&self, slug: &str, name: &str) -> Result<Tenant> {
        let slug = TenantSlug::parse(slug.trim())?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::BadInput("name must have 1 to 100 characters".into()));
        }
        match self.store.create_tenant(&slug, name).await {
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(format!(
                "tenant {} already exists",
                slug.as_str()
            ))),
            other => Ok(other?),
        }
    }

    /// Delete a tenant with everything it owns; its tokens are refused at once.
    pub async fn delete_tenant(&self, slug: &str) -> Result<()> {
        if slug == TenantSlug::DEFAULT {
            return Err(Error::Forbidden(
                "the default tenant cannot be deleted".into(),
            ));
        }
        let tenant = self.tenant(Some(slug)).await?;
        // Machine tokens are cached by verifiers for up to an hour, access tokens live for
        // their TTL: keep the cut-off for the longer of the two.
        let horizon = self.revocation_horizon().max(now_ms() / 1000 + 3600);
        match self.store.delete_tenant(&tenant, horizon).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("tenant")),
            other => other?,
        }
        self.feed.announce().await;
        self.tenant_changed(slug).await;
        Ok(())
    }
}
