//! Machine tokens: stored as a SHA-256 of the secret, never the secret.

use sqlx::Row;
use sqlx::any::AnyRow;

use auth_protocol::RevocationEntry;

use super::audit::{AuditEvent, insert_audit};
use super::revocations::record;
use super::{Store, StoreError, StoreResult, some_row};
use crate::domain::{ApiToken, Millis, Scope, Tenant, new_id, now_ms};

fn api_token(row: &AnyRow) -> StoreResult<ApiToken> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        scopes: scopes
            .split_whitespace()
            .filter_map(|s| Scope::parse(s).ok())
            .collect(),
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl Store {
    /// Store a new machine token whose secret hashes to `secret_hash`, with `audit` (its
    /// detail gains the token's id) in the same transaction.
    pub async fn create_api_token(
        &self,
        tenant_id: &str,
        name: &str,
        scopes: &[Scope],
        secret_hash: &str,
        expires_at: Option<Millis>,
        audit: Option<AuditEvent<'_>>,
    ) -> StoreResult<ApiToken> {
        let token = ApiToken {
            id: new_id(),
            tenant_id: tenant_id.to_owned(),
            name: name.to_owned(),
            scopes: scopes.to_vec(),
            created_at: now_ms(),
            last_used_at: None,
            expires_at,
        };
        let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, name, scopes, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.id)
        .bind(tenant_id)
        .bind(name)
        .bind(scopes.join(" "))
        .bind(secret_hash)
        .bind(token.created_at)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        if let Some(mut audit) = audit {
            audit.detail["tokenId"] = token.id.clone().into();
            insert_audit(&mut *tx, tenant_id, &audit).await?;
        }
        tx.commit().await?;
        Ok(token)
    }

    /// The tenant's machine tokens, newest first.
    pub async fn api_tokens(&self, tenant_id: &str) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, scopes, created_at, last_used_at, expires_at FROM api_tokens \
             WHERE tenant_id = $1 ORDER BY created_at DESC",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(api_token).collect()
    }

    /// One of the tenant's machine tokens, by id.
    pub async fn api_token(&self, tenant_id: &str, id: &str) -> StoreResult<Option<ApiToken>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, scopes, created_at, last_used_at, expires_at FROM api_tokens \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(api_token).transpose()
    }

    /// The machine token whose secret hashes to `secret_hash`, in any tenant.
    pub async fn api_token_by_hash(&self, secret_hash: &str) -> StoreResult<ApiToken> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, scopes, created_at, last_used_at, expires_at FROM api_tokens \
             WHERE secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        let token = api_token(&row)?;
        let now = now_ms();
        if token.last_used_at.is_none_or(|at| at < now - 60_000) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&token.id)
                .execute(&mut *self.writer().await?)
                .await?;
        }
        Ok(token)
    }

    /// Delete one of the tenant's machine tokens and write its feed entry (kept until
    /// `horizon`, seconds), in one transaction.
    pub async fn delete_api_token(
        &self,
        tenant: &Tenant,
        id: &str,
        horizon: i64,
        audit: &AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        some_row(
            sqlx::query("DELETE FROM api_tokens WHERE tenant_id = $1 AND id = $2")
                .bind(&tenant.id)
                .bind(id)
                .execute(&mut *tx)
                .await?,
        )?;
        let revoked = RevocationEntry::api_token(&tenant.slug, id, horizon);
        record(&mut tx, &revoked).await?;
        insert_audit(&mut *tx, &tenant.id, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
