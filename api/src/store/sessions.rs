//! Sessions and their rotating refresh tokens.

use auth_protocol::RevocationEntry;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, bind_event, insert_audit, insert_audit_into};
use super::db::Backend;
use super::revocations::{insert_feed_into, record, record_for};
use super::{Store, StoreError, StoreResult};
use crate::domain::{Device, Millis, RevokeReason, Session, SignInMethod, Tenant, new_id, now_ms};

/// The head of every insert of a refresh token: its columns, in the order of the values.
macro_rules! insert_refresh_into {
    () => {
        "INSERT INTO refresh_tokens (id, tenant_id, session_id, token_hash, created_at, expires_at)"
    };
}

/// The writes that open a session, with one numbering of their parameters: the session
/// ($1–$10), its refresh token ($11, $12), its audit event ($13–$20), its `session_created`
/// feed entry ($21–$25) and the forgetting of the counted sign-in attempts of address $26
/// (none when it is null). On PostgreSQL they are one statement (data-modifying `WITH`: one
/// round trip, its own transaction, the foreign keys checked at its end); on SQLite one
/// batch of statements in a transaction (SQLite binds `$N` by its number in each).
macro_rules! new_session_writes {
    (@session) => {
        "INSERT INTO sessions (id, tenant_id, user_id, method, user_agent, os, browser, ip, \
         created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)"
    };
    (@refresh) => {
        concat!(insert_refresh_into!(), " VALUES ($11, $2, $1, $12, $9, $10)")
    };
    (@audit) => {
        concat!(
            insert_audit_into!(),
            " VALUES ($13, $2, $9, $14, $15, $16, $17, $18, $19, $20)"
        )
    };
    (@forget) => {
        "DELETE FROM sign_in_failures WHERE tenant_id = $2 AND email = $26"
    };
    (@feed) => {
        concat!(insert_feed_into!(), " VALUES ($21, $22, $23, $24, $25, $9, $3)")
    };
    (postgres) => {
        concat!(
            "WITH s AS (", new_session_writes!(@session),
            "), r AS (", new_session_writes!(@refresh),
            "), a AS (", new_session_writes!(@audit),
            "), f AS (", new_session_writes!(@forget),
            ") ", new_session_writes!(@feed)
        )
    };
    (sqlite) => {
        concat!(
            new_session_writes!(@session), "; ",
            new_session_writes!(@refresh), "; ",
            new_session_writes!(@audit), "; ",
            new_session_writes!(@forget), "; ",
            new_session_writes!(@feed)
        )
    };
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
    /// The tenant's slug, which names it on the feed (a `session_created` entry).
    pub tenant_slug: &'a str,
    /// Its id, chosen by the caller so that the audit event can name it.
    pub id: &'a str,
    /// User.
    pub user_id: &'a str,
    /// How it is started.
    pub method: SignInMethod,
    /// Where from.
    pub device: &'a Device,
    /// Absolute lifetime.
    pub lifetime_ms: i64,
    /// SHA-256 of its first refresh token.
    pub refresh_hash: &'a str,
    /// The audit event recorded with it, in the same transaction.
    pub audit: AuditEvent<'a>,
    /// An address whose counted sign-in attempts this successful sign-in forgets.
    pub forget_attempts_of: Option<&'a str>,
}

/// The outcome of [`Store::rotate_refresh_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// This call exchanged the token.
    Won,
    /// Another call exchanged it first.
    Lost,
    /// The session is revoked or over: nothing was exchanged.
    SessionEnded,
}

/// What a revocation needs besides its subject: the tenant (whose slug names the feed
/// entries), the reason recorded on the sessions, and the horizon (seconds) until which its
/// feed entries are kept, when every access token they cover has expired.
#[derive(Debug, Clone, Copy)]
pub struct Revoking<'a> {
    /// The tenant.
    pub tenant: &'a Tenant,
    /// Why, recorded as the sessions' `revoke_reason`.
    pub reason: RevokeReason,
    /// Seconds since the epoch.
    pub horizon: i64,
    /// The audit event of the revocation, recorded in its transaction.
    pub audit: Option<&'a AuditEvent<'a>>,
}

impl<'a> Revoking<'a> {
    /// The same revocation, recording `event` in its transaction.
    pub fn with_audit(self, event: &'a AuditEvent<'a>) -> Self {
        Self {
            audit: Some(event),
            ..self
        }
    }

    /// Record the audit event, if any, inside `tx`.
    pub(crate) async fn record_audit(&self, tx: &mut AnyConnection) -> StoreResult<()> {
        if let Some(event) = self.audit {
            insert_audit(&mut *tx, &self.tenant.id, event).await?;
        }
        Ok(())
    }

    fn session_entry(&self, session_id: &str) -> RevocationEntry {
        RevocationEntry::session(&self.tenant.slug, session_id, self.horizon)
    }
}

/// End every active session of a user and cut off their access tokens inside `tx`: the
/// sessions are revoked, the user's cut-off raised to this second, and the feed gets a
/// `user` entry (tokens issued until now) and a `session` entry per session ended, so that
/// a token minted by a refresh racing this revocation is refused by its session whatever
/// its `iat`. Returns how many sessions were active.
pub(crate) async fn end_user_sessions(
    tx: &mut AnyConnection,
    revoking: Revoking<'_>,
    user_id: &str,
) -> StoreResult<u64> {
    let now = now_ms();
    let second = now / 1000;
    let tenant_id = &revoking.tenant.id;
    let rows = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
         WHERE tenant_id = $3 AND user_id = $4 AND revoked_at IS NULL AND expires_at > $1 \
         RETURNING id",
    )
    .bind(now)
    .bind(revoking.reason.as_str())
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE users SET tokens_valid_after = $1 \
         WHERE tenant_id = $2 AND id = $3 AND tokens_valid_after < $1",
    )
    .bind(second)
    .bind(tenant_id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let user = RevocationEntry::user(&revoking.tenant.slug, user_id, second, revoking.horizon);
    record(&mut *tx, &user).await?;
    for row in &rows {
        let id: String = row.try_get("id")?;
        record_for(&mut *tx, &revoking.session_entry(&id), Some(user_id)).await?;
    }
    Ok(rows.len() as u64)
}

impl Store {
    /// Start a session with its first refresh token, recording its audit event and a
    /// `session_created` feed entry (for `sessionEvents`, kept two minutes) in the same
    /// transaction: one commit per sign-in.
    pub async fn create_session(&self, new: NewSession<'_>) -> StoreResult<Session> {
        self.create_session_with(new, None).await
    }

    /// [`Store::create_session`], storing `connection` (provider tokens from the same sign-in)
    /// in the same transaction; `Conflict("connection")` when the provider account is
    /// connected to another user, and then nothing is written.
    pub async fn create_session_with(
        &self,
        new: NewSession<'_>,
        connection: Option<&super::connections::ConnectionWrite>,
    ) -> StoreResult<Session> {
        let NewSession {
            tenant_id,
            tenant_slug,
            id,
            user_id,
            method,
            device,
            lifetime_ms,
            refresh_hash,
            audit,
            forget_attempts_of,
        } = new;
        let now = now_ms();
        let session = Session {
            id: id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
            method: method.as_str().to_owned(),
            device: device.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + lifetime_ms,
            revoked_at: None,
        };
        let created = RevocationEntry::session_created(tenant_slug, &session.id, now / 1000 + 120);
        // The session, its refresh token, its audit event, its feed entry and the forgotten
        // attempts, bound once (see `new_session_writes!`).
        let backend = self.db().backend;
        let writes = sqlx::query(match backend {
            Backend::Postgres => new_session_writes!(postgres),
            Backend::Sqlite => new_session_writes!(sqlite),
        })
        .bind(&session.id)
        .bind(tenant_id)
        .bind(user_id)
        .bind(method.as_str())
        .bind(&device.user_agent)
        .bind(&device.os)
        .bind(&device.browser)
        .bind(&device.ip)
        .bind(now)
        .bind(session.expires_at)
        .bind(new_id())
        .bind(refresh_hash)
        .bind(new_id());
        let writes = bind_event(writes, &audit)
            .bind(&created.tenant)
            .bind(created.kind.as_str())
            .bind(&created.id)
            .bind(created.iat_cutoff)
            .bind(created.expires_at)
            .bind(forget_attempts_of);
        if backend == Backend::Postgres && connection.is_none() {
            // One statement is one transaction: no BEGIN and COMMIT round trips.
            writes.execute(&mut *self.writer().await?).await?;
            return Ok(session);
        }
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        writes.execute(&mut *tx).await?;
        if let Some(connection) = connection {
            super::connections::upsert_connection(&mut tx, connection).await?;
        }
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

    /// A session of the tenant with its user's token cut-off (access tokens issued at or
    /// before that second are refused), in one read for every authenticated request.
    pub async fn session_with_cutoff(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> StoreResult<(Session, i64)> {
        let row = sqlx::query(
            "SELECT s.id, s.tenant_id, s.user_id, s.method, s.user_agent, s.os, s.browser, s.ip,              s.created_at, s.last_seen_at, s.expires_at, s.revoked_at, u.tokens_valid_after              FROM sessions s JOIN users u ON u.id = s.user_id              WHERE s.tenant_id = $1 AND s.id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok((session(&row)?, row.try_get("tokens_valid_after")?))
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

    /// Revoke one active session of the user and write its feed entry, in one transaction;
    /// `false` when there was none to revoke.
    pub async fn revoke_session(
        &self,
        revoking: Revoking<'_>,
        user_id: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
             WHERE tenant_id = $3 AND user_id = $4 AND id = $5 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(revoking.reason.as_str())
        .bind(&revoking.tenant.id)
        .bind(user_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        record_for(&mut tx, &revoking.session_entry(id), Some(user_id)).await?;
        revoking.record_audit(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Revoke every active session of the user and cut off their access tokens, with the
    /// feed entries, in one transaction; returns how many sessions were active.
    pub async fn revoke_user_sessions(
        &self,
        revoking: Revoking<'_>,
        user_id: &str,
    ) -> StoreResult<u64> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let ended = end_user_sessions(&mut tx, revoking, user_id).await?;
        revoking.record_audit(&mut tx).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Revoke every active session of the user but `keep`, with a feed entry each, in one
    /// transaction; returns the ids revoked.
    pub async fn revoke_other_sessions(
        &self,
        revoking: Revoking<'_>,
        user_id: &str,
        keep: &str,
    ) -> StoreResult<Vec<String>> {
        let now = now_ms();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
             WHERE tenant_id = $3 AND user_id = $4 AND id <> $5 \
               AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING id",
        )
        .bind(now)
        .bind(revoking.reason.as_str())
        .bind(&revoking.tenant.id)
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        for id in &ids {
            record_for(&mut tx, &revoking.session_entry(id), Some(user_id)).await?;
        }
        revoking.record_audit(&mut tx).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Record activity on a session, at most once a minute.
    pub async fn touch_session(&self, id: &str, now: Millis) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
            .bind(now)
            .bind(id)
            .bind(now - 60_000)
            .execute(&mut *self.writer().await?)
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
    /// sealed pair it was exchanged for and `audit`, in one transaction that first claims the session
    /// row: a session revoked before (or while) the exchange runs cannot get a new pair, and
    /// of two concurrent exchanges exactly one wins (the loser's new token is not kept).
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_refresh_token(
        &self,
        tenant_id: &str,
        session_id: &str,
        old_id: &str,
        new_hash: &str,
        expires_at: Millis,
        sealed_pair: &str,
        audit: &AuditEvent<'_>,
    ) -> StoreResult<Rotation> {
        let now = now_ms();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        // Locks the session row until commit: a concurrent revocation either ran before
        // (and this finds no active session) or waits until this exchange is visible.
        let active = sqlx::query(
            "UPDATE sessions SET last_seen_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(session_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !active {
            return Ok(Rotation::SessionEnded);
        }
        insert_refresh(&mut *tx, tenant_id, session_id, new_hash, expires_at).await?;
        let won = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1, successor = $2 WHERE id = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(sealed_pair)
        .bind(old_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            // Rolled back: the successor this call inserted is not kept.
            return Ok(Rotation::Lost);
        }
        insert_audit(&mut *tx, tenant_id, audit).await?;
        tx.commit().await?;
        Ok(Rotation::Won)
    }

    /// Housekeeping: forget up to `batch` sealed successors of tokens exchanged before
    /// `used_before` (the grace window is over); how many. Walks the partial index of the
    /// rows that still hold one.
    pub async fn purge_successors(&self, used_before: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET successor = NULL WHERE id IN (SELECT id FROM refresh_tokens \
             WHERE successor IS NOT NULL AND used_at < $1 LIMIT $2)",
        )
        .bind(used_before)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// Housekeeping: delete up to `batch` sessions (with their refresh tokens) that expired
    /// before `before`; how many. (Expired and revoked sessions are purged by one statement
    /// each, over an index each: an `OR` of the two read the whole table.)
    pub async fn purge_expired_sessions(&self, before: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// Housekeeping: delete up to `batch` sessions (with their refresh tokens) revoked
    /// before `before`; how many.
    pub async fn purge_revoked_sessions(&self, before: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE revoked_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}

async fn insert_refresh<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    tenant_id: &str,
    session_id: &str,
    hash: &str,
    expires_at: Millis,
) -> StoreResult<()> {
    sqlx::query(concat!(
        insert_refresh_into!(),
        " VALUES ($1, $2, $3, $4, $5, $6)"
    ))
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
