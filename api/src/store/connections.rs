//! Provider identities (what a user signs in with: tenant, issuer, subject) and connections
//! (a user's sealed provider tokens, context `connections:<id>:access` / `:refresh`).

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::audit::{AuditEvent, insert_audit};
use super::{Store, StoreResult, conflict_on_unique, json_column, some_row};
use crate::domain::{Connection, Millis, User, new_id, now_ms};

/// A provider identity to attach to a user.
#[derive(Debug, Clone)]
pub struct NewIdentity<'a> {
    /// The provider's issuer (the subject's namespace).
    pub issuer: &'a str,
    /// The provider's subject.
    pub subject: &'a str,
    /// The provider's name, for display.
    pub provider: &'a str,
    /// The email the provider gave.
    pub email: Option<&'a str>,
}

/// Tokens to store as a connection (sealed by the caller under `id`); serialisable, so a
/// provider sign-in waiting for its second factor can keep it with the pending sign-in.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConnectionWrite {
    /// The row id (an existing row's, to replace its tokens).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: String,
    /// Provider id.
    pub provider_id: String,
    /// The provider account's subject.
    pub subject: String,
    /// The provider account's email.
    pub email: Option<String>,
    /// Sealed access token.
    pub access_token: String,
    /// Sealed refresh token.
    pub refresh_token: Option<String>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Access token expiry.
    pub expires_at: Option<Millis>,
}

/// A connection with its sealed tokens.
#[derive(Debug, Clone)]
pub struct StoredConnection {
    /// The connection.
    pub connection: Connection,
    /// Sealed access token.
    pub access_token: String,
    /// Sealed refresh token.
    pub refresh_token: Option<String>,
}

macro_rules! connection_columns {
    () => {
        "c.id, c.tenant_id, c.user_id, c.provider_id, p.name AS provider, \
     c.subject, c.email, c.access_token, c.refresh_token, c.scopes, c.expires_at, \
     c.created_at, c.updated_at"
    };
}

fn connection(row: &AnyRow) -> StoreResult<StoredConnection> {
    let refresh_token: Option<String> = row.try_get("refresh_token")?;
    Ok(StoredConnection {
        connection: Connection {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            user_id: row.try_get("user_id")?,
            provider_id: row.try_get("provider_id")?,
            provider: row.try_get("provider")?,
            subject: row.try_get("subject")?,
            email: row.try_get("email")?,
            scopes: json_column(&row.try_get::<String, _>("scopes")?),
            expires_at: row.try_get("expires_at")?,
            has_refresh_token: refresh_token.is_some(),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        },
        access_token: row.try_get("access_token")?,
        refresh_token,
    })
}

/// Insert or replace the connection inside `tx`; `Conflict("connection")` when the provider
/// account is connected to another user of the tenant.
pub(crate) async fn upsert_connection(
    tx: &mut AnyConnection,
    write: &ConnectionWrite,
) -> StoreResult<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO connections (id, tenant_id, user_id, provider_id, subject, email, \
         access_token, refresh_token, scopes, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
         ON CONFLICT (id) DO UPDATE SET subject = $5, email = $6, access_token = $7, \
         refresh_token = COALESCE($8, connections.refresh_token), scopes = $9, \
         expires_at = $10, refreshing_until = NULL, updated_at = $11",
    )
    .bind(&write.id)
    .bind(&write.tenant_id)
    .bind(&write.user_id)
    .bind(&write.provider_id)
    .bind(&write.subject)
    .bind(&write.email)
    .bind(&write.access_token)
    .bind(&write.refresh_token)
    .bind(serde_json::to_string(&write.scopes).unwrap_or_else(|_| "[]".into()))
    .bind(write.expires_at)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(conflict_on_unique("connection"))?;
    Ok(())
}

/// Attach a provider identity to a user inside `tx`; `Conflict("identity")` when it
/// belongs to a user already.
pub(crate) async fn insert_identity(
    tx: &mut AnyConnection,
    tenant_id: &str,
    user_id: &str,
    identity: &NewIdentity<'_>,
) -> StoreResult<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO user_identities (id, tenant_id, user_id, issuer, subject, provider, email, \
         created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(new_id())
    .bind(tenant_id)
    .bind(user_id)
    .bind(identity.issuer)
    .bind(identity.subject)
    .bind(identity.provider)
    .bind(identity.email)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(conflict_on_unique("identity"))?;
    Ok(())
}

impl Store {
    /// The user that signs in with this provider identity, if any.
    pub async fn identity_user(
        &self,
        tenant_id: &str,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT user_id FROM user_identities WHERE tenant_id = $1 AND issuer = $2 AND subject = $3",
        )
        .bind(tenant_id)
        .bind(issuer)
        .bind(subject)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.try_get("user_id")).transpose()?)
    }

    /// Create a user who signs in with a provider identity: the user, their address (when
    /// the provider gave one; `Conflict("email")` when another account holds it) and the
    /// identity, in one transaction.
    pub async fn create_identity_user(
        &self,
        tenant_id: &str,
        email: Option<(&str, bool)>,
        name: Option<String>,
        identity: &NewIdentity<'_>,
    ) -> StoreResult<User> {
        let now = now_ms();
        let user = User {
            id: new_id(),
            tenant_id: tenant_id.to_owned(),
            password_hash: None,
            name_first: None,
            name_last: None,
            name_display: name,
            avatar: None,
            metadata: serde_json::json!({}),
            roles: vec![],
            configured_roles: vec![],
            tokens_valid_after: 0,
            disabled_at: None,
            created_at: now,
        };
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, name_display, metadata, roles, configured_roles, \
             tokens_valid_after, created_at, updated_at) VALUES ($1, $2, $3, '{}', '[]', '[]', 0, $4, $4)",
        )
        .bind(&user.id)
        .bind(tenant_id)
        .bind(&user.name_display)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some((email, verified)) = email {
            sqlx::query(
                "INSERT INTO user_emails (id, tenant_id, user_id, email, state, is_primary, \
                 created_at, verified_at) VALUES ($1, $2, $3, $4, 'active', 1, $5, $6)",
            )
            .bind(new_id())
            .bind(tenant_id)
            .bind(&user.id)
            .bind(email)
            .bind(now)
            .bind(verified.then_some(now))
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique("email"))?;
        }
        insert_identity(&mut tx, tenant_id, &user.id, identity).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Attach a provider identity to an existing user (linking);
    /// `Conflict("identity")` when another user has it.
    pub async fn add_identity(
        &self,
        tenant_id: &str,
        user_id: &str,
        identity: &NewIdentity<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        insert_identity(&mut tx, tenant_id, user_id, identity).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user's connections, by provider name.
    pub async fn connections(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<Connection>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections c JOIN oauth_providers p ON p.id = c.provider_id \
             WHERE c.tenant_id = $1 AND c.user_id = $2 ORDER BY p.name"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(connection(r)?.connection)).collect()
    }

    /// The user's connection to the provider with this id, with its sealed tokens.
    pub async fn connection(
        &self,
        tenant_id: &str,
        user_id: &str,
        provider_id: &str,
    ) -> StoreResult<Option<StoredConnection>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections c JOIN oauth_providers p ON p.id = c.provider_id \
             WHERE c.tenant_id = $1 AND c.user_id = $2 AND c.provider_id = $3"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(provider_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(connection).transpose()
    }

    /// Store a connection (and, when linking, the identity) with an audit event, in one
    /// transaction.
    pub async fn link_connection(
        &self,
        write: &ConnectionWrite,
        identity: Option<&NewIdentity<'_>>,
        audit: AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        if let Some(identity) = identity {
            insert_identity(&mut tx, &write.tenant_id, &write.user_id, identity).await?;
        }
        upsert_connection(&mut tx, write).await?;
        insert_audit(&mut *tx, &write.tenant_id, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete a connection with an audit event; `NotFound` when it is gone.
    pub async fn delete_connection(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEvent<'_>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        some_row(
            sqlx::query("DELETE FROM connections WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .execute(&mut *tx)
                .await?,
        )?;
        insert_audit(&mut *tx, tenant_id, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claim the right to refresh a connection until `until` (ms): `true` for one caller
    /// at a time across every replica (the row is the lock); a claim left by a crashed
    /// replica lapses at its `until`.
    pub async fn claim_connection_refresh(&self, id: &str, until: Millis) -> StoreResult<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE connections SET refreshing_until = $1 \
             WHERE id = $2 AND (refreshing_until IS NULL OR refreshing_until < $3)",
        )
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Give up a refresh claim without new tokens (the refresh failed).
    pub async fn release_connection_refresh(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE connections SET refreshing_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Store refreshed tokens in the existing row (and release the claim), with an audit
    /// event; `NotFound` when the connection was removed meanwhile (an unlink is not undone).
    pub async fn store_refreshed_connection(
        &self,
        write: &ConnectionWrite,
        audit: Option<AuditEvent<'_>>,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        some_row(
            sqlx::query(
                "UPDATE connections SET access_token = $1, \
                 refresh_token = COALESCE($2, refresh_token), scopes = $3, expires_at = $4, \
                 refreshing_until = NULL, updated_at = $5 WHERE tenant_id = $6 AND id = $7",
            )
            .bind(&write.access_token)
            .bind(&write.refresh_token)
            .bind(serde_json::to_string(&write.scopes).unwrap_or_else(|_| "[]".into()))
            .bind(write.expires_at)
            .bind(now_ms())
            .bind(&write.tenant_id)
            .bind(&write.id)
            .execute(&mut *tx)
            .await?,
        )?;
        if let Some(audit) = audit {
            insert_audit(&mut *tx, &write.tenant_id, &audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every connection of a user with its sealed tokens (to revoke them before the
    /// account goes).
    pub async fn user_connections_sealed(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<StoredConnection>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections c JOIN oauth_providers p ON p.id = c.provider_id \
             WHERE c.tenant_id = $1 AND c.user_id = $2"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(connection).collect()
    }
}
