//! Brute-force protection kept in the database, so every API replica on one PostgreSQL
//! shares it: fixed-window rate-limit counters, and consecutive failed sign-ins per email.

use sqlx::Row;

use super::{Store, StoreResult};
use crate::domain::Millis;

/// One counter to bump: at most `max` hits per `window_ms`.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Unique name, e.g. `<tenant>:signIn:ip:<ip>`.
    pub key: String,
    /// Hits allowed per window.
    pub max: i64,
    /// Window length.
    pub window_ms: i64,
}

/// Failed sign-ins of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Consecutive failures.
    pub failures: i64,
    /// Refused until then.
    pub locked_until: Millis,
}

impl Store {
    /// Count a hit in every bucket (one transaction); the milliseconds to wait when any of
    /// them is over its limit, the longest such wait.
    pub async fn hit(&self, buckets: &[Bucket], now: Millis) -> StoreResult<Option<i64>> {
        let mut tx = self.pool().begin().await?;
        let mut wait = None;
        for bucket in buckets {
            let row = sqlx::query(
                "INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1) \
                 ON CONFLICT (bucket) DO UPDATE SET \
                 hits = CASE WHEN rate_limits.window_start <= $3 THEN 1 ELSE rate_limits.hits + 1 END, \
                 window_start = CASE WHEN rate_limits.window_start <= $3 THEN $2 ELSE rate_limits.window_start END \
                 RETURNING window_start, hits",
            )
            .bind(&bucket.key)
            .bind(now)
            .bind(now - bucket.window_ms)
            .fetch_one(&mut *tx)
            .await?;
            let start: i64 = row.try_get("window_start")?;
            let hits: i64 = row.try_get("hits")?;
            if hits > bucket.max {
                let left = (start + bucket.window_ms - now).max(1);
                wait = Some(wait.map_or(left, |w: i64| w.max(left)));
            }
        }
        tx.commit().await?;
        Ok(wait)
    }

    /// Failed sign-ins of an address, if any are on record.
    pub async fn sign_in_failures(
        &self,
        tenant_id: &str,
        email: &str,
    ) -> StoreResult<Option<Failures>> {
        let row = sqlx::query(
            "SELECT failures, locked_until FROM sign_in_failures WHERE tenant_id = $1 AND email = $2",
        )
        .bind(tenant_id)
        .bind(email)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(Failures {
                failures: row.try_get("failures")?,
                locked_until: row.try_get("locked_until")?,
            })
        })
        .transpose()
    }

    /// Record a failed sign-in; failures older than `forget_ms` start the count afresh.
    /// `lock` turns the new count into a lock end (0 for none). Returns the new state.
    pub async fn record_sign_in_failure(
        &self,
        tenant_id: &str,
        email: &str,
        now: Millis,
        forget_ms: i64,
        lock: impl Fn(i64) -> Millis,
    ) -> StoreResult<Failures> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "INSERT INTO sign_in_failures (tenant_id, email, failures, last_failure_at, locked_until) \
             VALUES ($1, $2, 1, $3, 0) ON CONFLICT (tenant_id, email) DO UPDATE SET \
             failures = CASE WHEN sign_in_failures.last_failure_at <= $4 THEN 1 ELSE sign_in_failures.failures + 1 END, \
             last_failure_at = $3 RETURNING failures",
        )
        .bind(tenant_id)
        .bind(email)
        .bind(now)
        .bind(now - forget_ms)
        .fetch_one(&mut *tx)
        .await?;
        let failures: i64 = row.try_get("failures")?;
        let locked_until = lock(failures);
        sqlx::query(
            "UPDATE sign_in_failures SET locked_until = $1 WHERE tenant_id = $2 AND email = $3",
        )
        .bind(locked_until)
        .bind(tenant_id)
        .bind(email)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Failures {
            failures,
            locked_until,
        })
    }

    /// Forget an address's failed sign-ins (after a success).
    pub async fn clear_sign_in_failures(&self, tenant_id: &str, email: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE tenant_id = $1 AND email = $2")
            .bind(tenant_id)
            .bind(email)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Drop counters whose window ended long ago.
    pub async fn purge_limits(&self, now: Millis) -> StoreResult<()> {
        sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
            .bind(now - 86_400_000)
            .execute(self.pool())
            .await?;
        sqlx::query("DELETE FROM sign_in_failures WHERE last_failure_at < $1")
            .bind(now - 86_400_000)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
