//! OAuth2 / OpenID Connect provider configurations per tenant, and the short-lived state of
//! a sign-in in flight (single use: taking it deletes it).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, insert_audit};
use super::{Store, StoreError, StoreResult, conflict_on_unique, json_column, some_row};
use crate::domain::{Endpoints, Millis, Provider, ProviderKind, now_ms};

/// A provider with its sealed client secret (context `oauth_providers:<id>`).
#[derive(Debug, Clone)]
pub struct StoredProvider {
    /// The configuration.
    pub provider: Provider,
    /// The sealed client secret, if one is set.
    pub sealed_secret: Option<String>,
}

/// What `upsert_provider` writes. `sealed_secret: None` keeps the stored secret.
#[derive(Debug, Clone)]
pub struct ProviderWrite<'a> {
    /// The provider (its `id` is the existing row's when it exists).
    pub provider: &'a Provider,
    /// A new sealed secret, or `None` to keep the stored one.
    pub sealed_secret: Option<String>,
    /// The audit event written in the same transaction.
    pub audit: AuditEvent<'a>,
}

/// A sign-in in flight, as stored.
#[derive(Debug, Clone)]
pub struct OAuthState {
    /// Row id (the sealed secrets' associated data).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Provider id.
    pub provider_id: String,
    /// The redirect URL it was started for.
    pub redirect_url: String,
    /// Sealed PKCE verifier and nonce (JSON).
    pub secrets: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// When it stops being accepted.
    pub expires_at: Millis,
}

fn provider(row: &AnyRow) -> StoreResult<StoredProvider> {
    let kind: String = row.try_get("kind")?;
    let sealed_secret: Option<String> = row.try_get("client_secret")?;
    Ok(StoredProvider {
        provider: Provider {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            kind: ProviderKind::parse(&kind).unwrap_or(ProviderKind::Oauth2),
            display_name: row.try_get("display_name")?,
            issuer: row.try_get("issuer")?,
            endpoints: json_column::<Endpoints>(&row.try_get::<String, _>("endpoints")?),
            client_id: row.try_get("client_id")?,
            extra_client_ids: json_column(&row.try_get::<String, _>("extra_client_ids")?),
            has_client_secret: sealed_secret.is_some(),
            team_id: row.try_get("team_id")?,
            key_id: row.try_get("key_id")?,
            scopes: json_column(&row.try_get::<String, _>("scopes")?),
            redirect_urls: json_column(&row.try_get::<String, _>("redirect_urls")?),
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        },
        sealed_secret,
    })
}

macro_rules! provider_columns {
    () => {
        "id, tenant_id, name, kind, display_name, issuer, endpoints, client_id, \
     extra_client_ids, client_secret, scopes, redirect_urls, enabled, created_at, updated_at, \
     team_id, key_id"
    };
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

impl Store {
    /// Create the provider, or replace the one with its id; `Conflict("provider")` when
    /// another row took the name meanwhile. The audit event is written with it.
    pub async fn upsert_provider(&self, write: ProviderWrite<'_>) -> StoreResult<Provider> {
        let p = write.provider;
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(
            "INSERT INTO oauth_providers (id, tenant_id, name, kind, display_name, issuer, \
             endpoints, client_id, extra_client_ids, client_secret, scopes, redirect_urls, \
             enabled, created_at, updated_at, team_id, key_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16) \
             ON CONFLICT (id) DO UPDATE SET kind = $4, display_name = $5, issuer = $6, \
             endpoints = $7, client_id = $8, extra_client_ids = $9, \
             client_secret = COALESCE($10, oauth_providers.client_secret), scopes = $11, \
             redirect_urls = $12, enabled = $13, updated_at = $14, team_id = $15, key_id = $16",
        )
        .bind(&p.id)
        .bind(&p.tenant_id)
        .bind(&p.name)
        .bind(p.kind.as_str())
        .bind(&p.display_name)
        .bind(&p.issuer)
        .bind(json(&p.endpoints))
        .bind(&p.client_id)
        .bind(json(&p.extra_client_ids))
        .bind(&write.sealed_secret)
        .bind(json(&p.scopes))
        .bind(json(&p.redirect_urls))
        .bind(i64::from(p.enabled))
        .bind(now_ms())
        .bind(&p.team_id)
        .bind(&p.key_id)
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique("provider"))?;
        insert_audit(&mut *tx, &p.tenant_id, &write.audit).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            provider_columns!(),
            " FROM oauth_providers WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(&p.tenant_id)
        .bind(&p.id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(provider(&row)?.provider)
    }

    /// The tenant's providers, by name.
    pub async fn providers(&self, tenant_id: &str) -> StoreResult<Vec<Provider>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            provider_columns!(),
            " FROM oauth_providers WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(provider(r)?.provider)).collect()
    }

    /// The tenant's provider called `name`, with its sealed secret.
    pub async fn provider_by_name(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> StoreResult<Option<StoredProvider>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            provider_columns!(),
            " FROM oauth_providers WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(provider).transpose()
    }

    /// The tenant's provider with this id, with its sealed secret.
    pub async fn provider_by_id(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> StoreResult<Option<StoredProvider>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            provider_columns!(),
            " FROM oauth_providers WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(provider).transpose()
    }

    /// Delete the provider (its states and connections go with it); `NotFound` when there
    /// is none by that name. The audit event is written with it.
    pub async fn delete_provider(
        &self,
        tenant_id: &str,
        name: &str,
        audit: AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        some_row(
            sqlx::query("DELETE FROM oauth_providers WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?,
        )?;
        insert_audit(&mut *tx, tenant_id, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keep a sign-in in flight under the hash of its state.
    pub async fn insert_oauth_state(
        &self,
        state: &OAuthState,
        state_hash: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_states (id, tenant_id, provider_id, state_hash, redirect_url, \
             secrets, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&state.id)
        .bind(&state.tenant_id)
        .bind(&state.provider_id)
        .bind(state_hash)
        .bind(&state.redirect_url)
        .bind(&state.secrets)
        .bind(json(&state.scopes))
        .bind(now_ms())
        .bind(state.expires_at)
        .execute(&mut *self.writer().await?)
        .await
        .map_err(conflict_on_unique("state"))?;
        Ok(())
    }

    /// Take (and so spend) the sign-in in flight stored under `state_hash`, whatever its
    /// tenant or expiry: the caller checks both. Of two concurrent takers one gets it.
    pub async fn take_oauth_state(&self, state_hash: &str) -> StoreResult<Option<OAuthState>> {
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING id, tenant_id, \
             provider_id, redirect_url, secrets, scopes, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        row.map(|row| {
            Ok(OAuthState {
                id: row.try_get("id")?,
                tenant_id: row.try_get("tenant_id")?,
                provider_id: row.try_get("provider_id")?,
                redirect_url: row.try_get("redirect_url")?,
                secrets: row.try_get("secrets")?,
                scopes: json_column(&row.try_get::<String, _>("scopes")?),
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
        .map_err(|e: StoreError| e)
    }

    /// Forget up to `batch` sign-ins in flight that expired by `now`; how many.
    pub async fn purge_oauth_states(&self, now: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM oauth_states WHERE id IN (SELECT id FROM oauth_states WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(now)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// Spend an id_token (by hash) until `expires_at` (ms): `false` when it was spent
    /// already, by any replica.
    pub async fn spend_id_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
        expires_at: Millis,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO used_id_tokens (token_hash, tenant_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(token_hash)
        .bind(tenant_id)
        .bind(expires_at)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forget up to `batch` spent id_tokens that can no longer be accepted by `now`; how
    /// many.
    pub async fn purge_used_id_tokens(&self, now: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM used_id_tokens WHERE token_hash IN (SELECT token_hash FROM used_id_tokens \
             WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(now)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}
