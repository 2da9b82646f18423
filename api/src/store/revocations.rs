//! The revocation feed: cut-offs verifiers apply to tokens they have already verified.

use auth_protocol::{RevocationEntry, RevocationKind};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult};
use crate::domain::{Millis, now_ms};

/// The head of every insert into the feed: its columns, in the order of the values.
macro_rules! insert_feed_into {
    () => {
        "INSERT INTO revocations (tenant, kind, subject, iat_cutoff, expires_at, created_at, user_id)"
    };
}
pub(super) use insert_feed_into;

fn entry_of(row: &AnyRow) -> StoreResult<Option<RevocationEntry>> {
    let kind: String = row.try_get("kind")?;
    let Some(kind) = RevocationKind::parse(&kind) else {
        return Ok(None);
    };
    Ok(Some(RevocationEntry {
        seq: row.try_get("seq")?,
        kind,
        tenant: row.try_get("tenant")?,
        id: row.try_get("subject")?,
        iat_cutoff: row.try_get("iat_cutoff")?,
        expires_at: row.try_get("expires_at")?,
    }))
}

/// An entry as the API's own subscribers see it: with the user whose session it names
/// (when it names one) and when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// The entry.
    pub entry: RevocationEntry,
    /// The user of the session a `session` or `session_created` entry names.
    pub user_id: Option<String>,
    /// When it was written (milliseconds).
    pub at: Millis,
}

/// Append an entry inside the caller's transaction, so that a revocation and its feed entry
/// commit together or not at all (the outbox pattern the mail uses); its `seq` is assigned
/// here. Every revocation path writes its entries through this.
pub(crate) async fn record(conn: &mut AnyConnection, entry: &RevocationEntry) -> StoreResult<i64> {
    record_for(conn, entry, None).await
}

/// [`record`] for an entry that names a session of `user_id` (`session`, `session_created`).
pub(crate) async fn record_for(
    conn: &mut AnyConnection,
    entry: &RevocationEntry,
    user_id: Option<&str>,
) -> StoreResult<i64> {
    let row = sqlx::query(concat!(
        insert_feed_into!(),
        " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq"
    ))
    .bind(&entry.tenant)
    .bind(entry.kind.as_str())
    .bind(&entry.id)
    .bind(entry.iat_cutoff)
    .bind(entry.expires_at)
    .bind(now_ms())
    .bind(user_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("seq")?)
}

impl Store {
    /// What the feed poller passes on: every entry still in force with a `seq` after
    /// `after_seq` or written since `lookback_from` (see [`Store::revocations_since`]),
    /// `session_created` ones included, with their user and write time; of the look-back
    /// only seqs after `complete_to`, below which the reader has every entry there will be.
    pub async fn feed_since(
        &self,
        after_seq: i64,
        lookback_from: Millis,
        complete_to: i64,
    ) -> StoreResult<Vec<FeedItem>> {
        let rows = sqlx::query(
            "SELECT seq, tenant, kind, subject, iat_cutoff, expires_at, created_at, user_id \
             FROM revocations WHERE (seq > $1 OR (created_at >= $2 AND seq > $4)) \
             AND expires_at > $3 ORDER BY seq",
        )
        .bind(after_seq)
        .bind(lookback_from)
        .bind(now_ms() / 1000)
        .bind(complete_to)
        .fetch_all(self.pool())
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(entry) = entry_of(row)? {
                items.push(FeedItem {
                    entry,
                    user_id: row.try_get("user_id")?,
                    at: row.try_get("created_at")?,
                });
            }
        }
        Ok(items)
    }

    /// Entries still in force with a `seq` after `after_seq`, and also those written since
    /// `lookback_from` (milliseconds) whatever their `seq` (but after `complete_to`), in feed
    /// order. On PostgreSQL a sequence number is taken when a row is inserted, not when it
    /// commits: seq 10 can become visible after seq 11, so a reader that resumes after 11
    /// must look back; `complete_to` is a low-water mark below which the reader has every
    /// entry there will be (see [`crate::service::feed::Feed::complete_to`]), so the look-back
    /// reads only past it (clamped to `after_seq`). Readers de-duplicate by `seq` (applying
    /// an entry twice changes nothing). Only revocations: `session_created` entries are for
    /// the API's own subscribers.
    pub async fn revocations_since(
        &self,
        after_seq: i64,
        lookback_from: Millis,
        complete_to: i64,
    ) -> StoreResult<Vec<RevocationEntry>> {
        let rows = sqlx::query(
            "SELECT seq, tenant, kind, subject, iat_cutoff, expires_at, created_at FROM revocations \
             WHERE seq > $5 AND (seq > $1 OR created_at >= $2) AND expires_at > $3 AND kind <> $4 \
             ORDER BY seq",
        )
        .bind(after_seq)
        .bind(lookback_from)
        .bind(now_ms() / 1000)
        .bind(RevocationKind::SessionCreated.as_str())
        .bind(complete_to.clamp(0, after_seq.max(0)))
        .fetch_all(self.pool())
        .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            entries.extend(entry_of(row)?);
        }
        Ok(entries)
    }

    /// Every entry still in force, in feed order.
    pub async fn revocations(&self) -> StoreResult<Vec<RevocationEntry>> {
        self.revocations_since(0, Millis::MAX, 0).await
    }

    /// The highest `seq` ever assigned (0 for none).
    pub async fn revocation_cursor(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM revocations")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("seq")?)
    }

    /// Forget up to `batch` entries whose tokens have all expired by `now` (keeping the
    /// newest, so the cursor never goes backwards); how many.
    pub async fn purge_revocations(&self, now: Millis, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM revocations WHERE seq IN (SELECT seq FROM revocations \
             WHERE expires_at < $1 AND seq < (SELECT MAX(seq) FROM revocations) LIMIT $2)",
        )
        .bind(now / 1000)
        .bind(batch)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}
