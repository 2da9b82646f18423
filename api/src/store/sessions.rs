//! Sessions and their rotating refresh tokens.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, insert_audit};
use super::{Store, StoreError, StoreResult};
use crate::domain::{Millis, new_id, now_ms};

/// Where a session was started from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// The raw User-Agent header.
    pub user_agent: Option<String>,
    /// Operating system parsed from it.
    pub os: Option<String>,
    /// Browser parsed from it.
    pub browser: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
}

/// A signed-in device of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id (`sid`).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: String,
    /// How it was started: `password`, `otp`, `oauth:<provider>`, ….
    pub method: String,
    /// Device it was started from.
    pub device: Device,
    /// Start.
    pub created_at: Millis,
    /// Last token refresh or authenticated request.
    pub last_seen_at: Millis,
    /// Absolute end.
    pub expires_at: Millis,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Millis>,
}

impl Session {
    /// Neither revoked nor past its absolute lifetime.
    pub fn is_active(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A refresh token row, as found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Row id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Session it belongs to.
    pub session_id: String,
    /// End of its validity.
    pub expires_at: Millis,
    /// When it was exchanged, if it was.
    pub used_at: Option<Millis>,
    /// The sealed pair it was exchanged for, while the grace window lasts.
    pub successor: Option<String>,
}

macro_rules! session_columns {
    () => {
        "id, tenant_id, user_id, method, user_agent, os, browser, ip, created_at, last_seen_at, \
         expires_at, revoked_at"
    };
}

fn session(row: &AnyRow) -> StoreResult<Session> {
    Ok(Session {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        user_id: row.try_get("user_id")?,
        method: row.try_get("method")?,
        device: Device {
            user_agent: row.try_get("user_agent")?,
            os: row.try_get("os")?,
            browser: row.try_get("browser")?,
            ip: row.try_get("ip")?,
        },
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// A session about to start.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// Tenant.
    pub tenant_id: &'a str,
    /// User.
    pub user_id: &'a str,
    /// How it is started: `password`, `otp`, ….
    pub method: &'a str,
    /// Where from.
    pub device: &'a Device,
    /// Absolute lifetime.
    pub lifetime_ms: i64,
    /// SHA-256 of its first refresh token.
    pub refresh_hash: &'a str,
    /// The audit action recorded with it, e.g. `user.sign_in`.
    pub action: &'a str,
}

impl Store {
    /// Start a session with its first refresh token, recording its audit action in the same
    /// transaction: one commit per sign-in.
    pub async fn create_session(&self, new: NewSession<'_>) -> StoreResult<Session> {
        let NewSession {
            tenant_id,
            user_id,
            method,
            device,
            lifetime_ms,
            refresh_hash,
            action,
        } = new;
        let now = now_ms();
        let session = Session {
            id: new_id(),
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
            method: method.to_owned(),
            device: device.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + lifetime_ms,
            revoked_at: None,
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, tenant_id, user_id, method, user_agent, os, browser, ip, \
             created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
        )
        .bind(&session.id)
        .bind(tenant_id)
        .bind(user_id)
        .bind(method)
        .bind(&device.user_agent)
        .bind(&device.os)
        .bind(&device.browser)
        .bind(&device.ip)
        .bind(now)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_refresh(
            &mut *tx,
            tenant_id,
            &session.id,
            refresh_hash,
            session.expires_at,
        )
        .await?;
        let event = AuditEvent {
            action,
            actor: Some(format!("user:{user_id}")),
            user_id: Some(user_id),
            session_id: Some(&session.id),
            ip: device.ip.as_deref(),
            detail: serde_json::json!({ "method": method }),
        };
        insert_audit(&mut *tx, tenant_id, &event).await?;
        tx.commit().await?;
        Ok(session)
    }

    /// A session of the tenant, revoked or not.
    pub async fn session(&self, tenant_id: &str, id: &str) -> StoreResult<Session> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        session(&row)
    }

    /// The user's sessions that are neither revoked nor expired, newest first.
    pub async fn active_sessions(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND expires_at > $3 ORDER BY created_at DESC"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(session).collect()
    }

    /// Revoke one active session of the user; `false` when there was none to revoke.
    pub async fn revoke_session(
        &self,
        tenant_id: &str,
        user_id: &str,
        id: &str,
        reason: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
             WHERE tenant_id = $3 AND user_id = $4 AND id = $5 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(reason)
        .bind(tenant_id)
        .bind(user_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revoke every active session of the user; returns how many were active.
    pub async fn revoke_user_sessions(
        &self,
        tenant_id: &str,
        user_id: &str,
        reason: &str,
    ) -> StoreResult<u64> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
             WHERE tenant_id = $3 AND user_id = $4 AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(reason)
        .bind(tenant_id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Revoke every active session of the user but `keep`; returns the ids revoked.
    pub async fn revoke_other_sessions(
        &self,
        tenant_id: &str,
        user_id: &str,
        keep: &str,
        reason: &str,
    ) -> StoreResult<Vec<String>> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
             WHERE tenant_id = $3 AND user_id = $4 AND id <> $5 \
               AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING id",
        )
        .bind(now)
        .bind(reason)
        .bind(tenant_id)
        .bind(user_id)
        .bind(keep)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?)
    }

    /// Record activity on a session, at most once a minute.
    pub async fn touch_session(&self, id: &str, now: Millis) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
            .bind(now)
            .bind(id)
            .bind(now - 60_000)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The refresh token with this hash, with its session.
    pub async fn refresh_token(&self, hash: &str) -> StoreResult<RefreshToken> {
        let row = sqlx::query(
            "SELECT id, tenant_id, session_id, expires_at, used_at, successor FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(RefreshToken {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            session_id: row.try_get("session_id")?,
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
            successor: row.try_get("successor")?,
        })
    }

    /// Exchange the unused refresh token `old_id` for a new one (`new_hash`), recording the
    /// sealed pair it was exchanged for. One conditional update decides the winner: of two
    /// concurrent exchanges exactly one returns `true`; the loser's new token is not kept.
    pub async fn rotate_refresh_token(
        &self,
        tenant_id: &str,
        session_id: &str,
        old_id: &str,
        new_hash: &str,
        expires_at: Millis,
        sealed_pair: &str,
    ) -> StoreResult<bool> {
        let now = now_ms();
        // The successor exists before the old token points at it, so a concurrent reader
        // that sees the old token used can always use the successor.
        insert_refresh(self.pool(), tenant_id, session_id, new_hash, expires_at).await?;
        let won = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1, successor = $2 WHERE id = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(sealed_pair)
        .bind(old_id)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1;
        if won {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
                .bind(now)
                .bind(session_id)
                .execute(self.pool())
                .await?;
        } else {
            sqlx::query("DELETE FROM refresh_tokens WHERE token_hash = $1")
                .bind(new_hash)
                .execute(self.pool())
                .await?;
        }
        Ok(won)
    }

    /// Housekeeping: forget sealed successors once the grace window is over, and delete
    /// sessions (with their refresh tokens) a day after they ended.
    pub async fn purge_sessions(&self, grace_ms: i64) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query("UPDATE refresh_tokens SET successor = NULL WHERE successor IS NOT NULL AND used_at < $1")
            .bind(now - grace_ms)
            .execute(self.pool())
            .await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(now - 86_400_000)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

async fn insert_refresh<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    tenant_id: &str,
    session_id: &str,
    hash: &str,
    expires_at: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, tenant_id, session_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(tenant_id)
    .bind(session_id)
    .bind(hash)
    .bind(now_ms())
    .bind(expires_at)
    .execute(executor)
    .await?;
    Ok(())
}
