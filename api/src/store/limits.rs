//! Brute-force protection kept in the database, so every API replica on one PostgreSQL
//! shares it: fixed-window rate-limit counters, and consecutive failed sign-ins per email.

use sqlx::Row;

use super::db::Backend;
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

/// Counted sign-in attempts of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Consecutive attempts without a success.
    pub failures: i64,
    /// Refused until then.
    pub locked_until: Millis,
}

/// The upsert that counts a hit in each bucket of `$values` at `$now`, starting afresh a
/// bucket whose window started at or before `$window` (the parameters that hold them).
macro_rules! upsert {
    ($values:literal, $now:literal, $window:literal) => {
        concat!(
            "INSERT INTO rate_limits (bucket, window_start, hits) VALUES ",
            $values,
            " ON CONFLICT (bucket) DO UPDATE SET hits = CASE WHEN rate_limits.window_start <= ",
            $window,
            " THEN 1 ELSE rate_limits.hits + 1 END, window_start = CASE WHEN rate_limits.window_start <= ",
            $window,
            " THEN ",
            $now,
            " ELSE rate_limits.window_start END RETURNING bucket, window_start, hits"
        )
    };
}
const UPSERT_ONE: &str = upsert!("($3, $1, 1)", "$1", "$2");
const UPSERT_TWO: &str = upsert!("($3, $1, 1), ($4, $1, 1)", "$1", "$2");

/// The lockout after failed sign-ins, as the one upsert that counts an attempt: the lock
/// lengths by count are written into the statement's `CASE`, built once; and, for
/// PostgreSQL, the same upsert behind the rate buckets' in one statement
/// ([`Store::guard_sign_in`]).
#[derive(Debug, Clone)]
pub struct LockSchedule {
    sql: std::sync::Arc<str>,
    guarded_sql: std::sync::Arc<str>,
}

/// The upsert counting an attempt of `$1` tenant, `$2` email at `$3` now (`$4` now - forget)
/// for a `VALUES` or `SELECT` source of its first row, `locks` the `CASE` arms of the lock's
/// end by count. The `WHERE` of the update makes a locked address return no row: nothing is
/// counted and the attempt is refused.
fn count_attempt_sql(source: &str, locks: &str) -> String {
    format!(
        "INSERT INTO sign_in_failures (tenant_id, email, failures, last_failure_at, locked_until) \
         {source} \
         ON CONFLICT (tenant_id, email) DO UPDATE SET \
         failures = CASE WHEN sign_in_failures.last_failure_at <= $4 THEN 1 \
           ELSE sign_in_failures.failures + 1 END, \
         locked_until = CASE (CASE WHEN sign_in_failures.last_failure_at <= $4 THEN 1 \
           ELSE sign_in_failures.failures + 1 END) {locks} END, \
         last_failure_at = $3 \
         WHERE sign_in_failures.locked_until <= $3 \
         RETURNING failures"
    )
}

impl LockSchedule {
    /// The statement for `lock_ms(n)`, the lock (milliseconds, 0 for none) earned by the
    /// `n`-th consecutive failure, which must be the same for every `n >= longest_from`.
    pub fn new(lock_ms: impl Fn(i64) -> i64, longest_from: i64) -> Self {
        // The lock's end: none (0) for a count that earns no lock, so that a concurrent
        // attempt whose clock read came a moment earlier is not refused by it.
        let end = |ms: i64| {
            if ms == 0 {
                "0".to_owned()
            } else {
                format!("$3 + {ms}")
            }
        };
        let mut locks = String::new();
        for n in 1..longest_from {
            locks.push_str(&format!("WHEN {n} THEN {} ", end(lock_ms(n))));
        }
        locks.push_str(&format!("ELSE {}", end(lock_ms(longest_from))));
        let first = format!("CASE 1 {locks} END");
        let sql = count_attempt_sql(&format!("VALUES ($1, $2, 1, $3, {first})"), &locks);
        // The rate buckets first ($6 and $7 in the window that started after $5, at most
        // $8 and $9 hits), then the attempt, counted only when no bucket is over: what the
        // two statements did one after the other. Every part of one statement reads the
        // same snapshot, so the last `SELECT` sees the address's lock as it was before.
        let counted = count_attempt_sql(
            &format!("SELECT $1, $2, 1, $3, {first} WHERE NOT EXISTS (SELECT 1 FROM over)"),
            &locks,
        );
        let guarded_sql = format!(
            "WITH hits AS ({}), \
             over AS (SELECT window_start FROM hits \
               WHERE (bucket = $6 AND hits > $8) OR (bucket = $7 AND hits > $9)), \
             counted AS ({counted}) \
             SELECT (SELECT max(window_start) FROM over) AS over_since, \
               (SELECT count(*) FROM counted) AS counted, \
               (SELECT locked_until FROM sign_in_failures WHERE tenant_id = $1 AND email = $2) AS locked_until",
            upsert!("($6, $3, 1), ($7, $3, 1)", "$3", "$5")
        );
        Self {
            sql: sql.into(),
            guarded_sql: guarded_sql.into(),
        }
    }

    fn sql(&self) -> sqlx::AssertSqlSafe<std::sync::Arc<str>> {
        sqlx::AssertSqlSafe(self.sql.clone())
    }

    fn guarded_sql(&self) -> sqlx::AssertSqlSafe<std::sync::Arc<str>> {
        sqlx::AssertSqlSafe(self.guarded_sql.clone())
    }
}

/// What [`Store::guard_sign_in`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Counted: go ahead.
    Go,
    /// A rate bucket is over its limit for this many more milliseconds (nothing counted
    /// toward the lockout).
    RateLimited(i64),
    /// The address is locked until then (nothing counted).
    Locked(Millis),
}

impl Store {
    /// Count a hit in every bucket; the milliseconds to wait when any of them is over its
    /// limit, the longest such wait. Buckets with the same window are counted by one
    /// statement (one round trip, atomic on its own), so the usual pair of an IP and an
    /// address costs a single upsert.
    pub async fn hit(&self, buckets: &[Bucket], now: Millis) -> StoreResult<Option<i64>> {
        let mut wait: Option<i64> = None;
        let mut rest: Vec<&Bucket> = buckets.iter().collect();
        while let Some(first) = rest.first() {
            let window_ms = first.window_ms;
            let (group, others): (Vec<&Bucket>, Vec<&Bucket>) =
                rest.into_iter().partition(|b| b.window_ms == window_ms);
            rest = others;
            for chunk in group.chunks(2) {
                let sql = if chunk.len() == 2 {
                    UPSERT_TWO
                } else {
                    UPSERT_ONE
                };
                let mut query = sqlx::query(sql).bind(now).bind(now - window_ms);
                for bucket in chunk {
                    query = query.bind(&bucket.key);
                }
                let rows = query.fetch_all(&mut *self.writer().await?).await?;
                for row in rows {
                    let key: String = row.try_get("bucket")?;
                    let start: i64 = row.try_get("window_start")?;
                    let hits: i64 = row.try_get("hits")?;
                    let Some(bucket) = chunk.iter().find(|b| b.key == key) else {
                        continue;
                    };
                    if hits > bucket.max {
                        let left = (start + window_ms - now).max(1);
                        wait = Some(wait.map_or(left, |w| w.max(left)));
                    }
                }
            }
        }
        Ok(wait)
    }

    /// Count a sign-in attempt of an address before its password is checked, and decide in
    /// the same statement whether it may go ahead: one atomic upsert, so attempts running in
    /// parallel (aliases, batches, concurrent requests) can never exceed the limit. Every
    /// attempt counts as a failure until a success forgets them; counts older than
    /// `forget_ms` start afresh; `lock` says how long each count locks the address for.
    /// `None` when the attempt may go ahead; the lock's
    /// end when the address is locked (and nothing was counted).
    pub async fn count_sign_in_attempt(
        &self,
        tenant_id: &str,
        email: &str,
        now: Millis,
        forget_ms: i64,
        lock: &LockSchedule,
    ) -> StoreResult<Option<Millis>> {
        let counted = sqlx::query(lock.sql())
            .bind(tenant_id)
            .bind(email)
            .bind(now)
            .bind(now - forget_ms)
            .fetch_optional(&mut *self.writer().await?)
            .await?;
        if counted.is_some() {
            return Ok(None);
        }
        // Locked: the upsert's condition refused to count; how long is left?
        let row = sqlx::query(
            "SELECT locked_until FROM sign_in_failures WHERE tenant_id = $1 AND email = $2",
        )
        .bind(tenant_id)
        .bind(email)
        .fetch_optional(self.pool())
        .await?;
        let until = match row {
            Some(row) => row.try_get::<i64, _>("locked_until")?,
            None => now + 1,
        };
        Ok(Some(until.max(now + 1)))
    }

    /// A password sign-in's guard: a hit in both `buckets` (one window), then, unless one is
    /// over its limit, the attempt of `email` counted as [`Store::count_sign_in_attempt`]
    /// does. On PostgreSQL one statement (one round trip and one commit instead of two of
    /// each, on the path of every sign-in); on SQLite, in process, the two statements.
    #[allow(clippy::too_many_arguments)]
    pub async fn guard_sign_in(
        &self,
        buckets: &[Bucket; 2],
        tenant_id: &str,
        email: &str,
        now: Millis,
        forget_ms: i64,
        lock: &LockSchedule,
    ) -> StoreResult<Guard> {
        let window_ms = buckets[0].window_ms;
        if self.db().backend == Backend::Sqlite || buckets[1].window_ms != window_ms {
            if let Some(wait) = self.hit(buckets, now).await? {
                return Ok(Guard::RateLimited(wait));
            }
            return Ok(
                match self
                    .count_sign_in_attempt(tenant_id, email, now, forget_ms, lock)
                    .await?
                {
                    None => Guard::Go,
                    Some(until) => Guard::Locked(until),
                },
            );
        }
        let row = sqlx::query(lock.guarded_sql())
            .bind(tenant_id)
            .bind(email)
            .bind(now)
            .bind(now - forget_ms)
            .bind(now - window_ms)
            .bind(&buckets[0].key)
            .bind(&buckets[1].key)
            .bind(buckets[0].max)
            .bind(buckets[1].max)
            .fetch_one(&mut *self.writer().await?)
            .await?;
        if let Some(since) = row.try_get::<Option<i64>, _>("over_since")? {
            return Ok(Guard::RateLimited((since + window_ms - now).max(1)));
        }
        if row.try_get::<i64, _>("counted")? > 0 {
            return Ok(Guard::Go);
        }
        let until = row
            .try_get::<Option<i64>, _>("locked_until")?
            .unwrap_or(now + 1);
        Ok(Guard::Locked(until.max(now + 1)))
    }

    /// Counted sign-in attempts of an address, if any are on record.
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

    /// Drop up to `batch` rate-limit counters whose window started more than a day before
    /// `now`; how many.
    pub async fn purge_limits(&self, now: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM rate_limits WHERE bucket IN (SELECT bucket FROM rate_limits \
             WHERE window_start < $1 LIMIT $2)",
        )
        .bind(now - 86_400_000)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// Drop up to `batch` failed sign-in counts last bumped more than a day before `now`;
    /// how many.
    pub async fn purge_sign_in_failures(&self, now: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM sign_in_failures WHERE (tenant_id, email) IN (SELECT tenant_id, email \
             FROM sign_in_failures WHERE last_failure_at < $1 LIMIT $2)",
        )
        .bind(now - 86_400_000)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}
