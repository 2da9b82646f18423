//! Tenants.

use sqlx::Row;

use auth_protocol::RevocationEntry;

use super::audit::{AuditEvent, insert_audit};
use super::revocations::record;
use super::{Store, StoreError, StoreResult, conflict_on_unique, some_row};
use crate::domain::{Millis, Tenant, TenantSettings, TenantSlug, new_id, now_ms};

macro_rules! columns {
    () => {
        "id, slug, name, settings, created_at"
    };
}

fn tenant(row: &sqlx::any::AnyRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        created_at: row.try_get::<i64, _>("created_at")? as Millis,
        settings: settings(&row.try_get::<String, _>("settings")?),
    })
}

/// Stored settings; a row that no longer parses (written by a newer version, say) falls back
/// to the defaults rather than locking the tenant out.
fn settings(json: &str) -> TenantSettings {
    serde_json::from_str(json).unwrap_or_else(|error| {
        tracing::error!(error = %error, "tenant settings do not parse; using the defaults");
        TenantSettings::default()
    })
}

impl Store {
    /// Create the `default` tenant unless it exists.
    pub async fn ensure_default_tenant(&self) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tenants (id, slug, name, settings, created_at) VALUES ($1, $2, $3, '{}', $4) \
             ON CONFLICT (slug) DO NOTHING",
        )
        .bind(new_id())
        .bind(TenantSlug::DEFAULT)
        .bind("Default")
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// The tenant with this slug.
    pub async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Tenant> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM tenants WHERE slug = $1"
        ))
        .bind(slug)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        tenant(&row)
    }

    /// The tenant with this id.
    pub async fn tenant_by_id(&self, id: &str) -> StoreResult<Tenant> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM tenants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        tenant(&row)
    }

    /// Every tenant, oldest first.
    pub async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM tenants ORDER BY created_at, slug"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(tenant).collect()
    }

    /// Create a tenant, recording `audit` in the tenant `audit_in` (the default one) in the
    /// same transaction; `Conflict` when the slug is taken.
    pub async fn create_tenant(
        &self,
        slug: &TenantSlug,
        name: &str,
        audit_in: &str,
        audit: &AuditEvent<'_>,
    ) -> StoreResult<Tenant> {
        let tenant = Tenant {
            id: new_id(),
            slug: slug.as_str().to_owned(),
            name: name.to_owned(),
            created_at: now_ms(),
            settings: TenantSettings::default(),
        };
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(
            "INSERT INTO tenants (id, slug, name, settings, created_at) VALUES ($1, $2, $3, '{}', $4)",
        )
        .bind(&tenant.id)
        .bind(&tenant.slug)
        .bind(&tenant.name)
        .bind(tenant.created_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique("tenant"))?;
        insert_audit(&mut *tx, audit_in, audit).await?;
        tx.commit().await?;
        Ok(tenant)
    }

    /// Replace a tenant's settings.
    pub async fn set_tenant_settings(
        &self,
        tenant_id: &str,
        settings: &TenantSettings,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(settings).map_err(|e| sqlx::Error::Encode(e.into()))?;
        some_row(
            sqlx::query("UPDATE tenants SET settings = $1 WHERE id = $2")
                .bind(json)
                .bind(tenant_id)
                .execute(&mut *self.writer().await?)
                .await?,
        )
    }

    /// Replace a tenant's settings and record `audit` in the same transaction.
    pub async fn update_tenant_settings(
        &self,
        tenant_id: &str,
        settings: &TenantSettings,
        audit: AuditEvent<'_>,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(settings).map_err(|e| sqlx::Error::Encode(e.into()))?;
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        some_row(
            sqlx::query("UPDATE tenants SET settings = $1 WHERE id = $2")
                .bind(json)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?,
        )?;
        insert_audit(&mut *tx, tenant_id, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete a tenant and, by cascade, everything it owns, writing the feed entry that cuts
    /// off every token issued in it until now (access and machine tokens), kept until
    /// `horizon` (seconds), and `audit` in the tenant `audit_in`, in one transaction.
    pub async fn delete_tenant(
        &self,
        tenant: &Tenant,
        horizon: i64,
        audit_in: &str,
        audit: &AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        some_row(
            sqlx::query("DELETE FROM tenants WHERE id = $1")
                .bind(&tenant.id)
                .execute(&mut *tx)
                .await?,
        )?;
        let revoked = RevocationEntry::tenant(&tenant.slug, now_ms() / 1000, horizon);
        record(&mut tx, &revoked).await?;
        insert_audit(&mut *tx, audit_in, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
