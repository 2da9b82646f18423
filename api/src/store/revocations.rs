//! The revocation feed: cut-offs verifiers apply to tokens they have already verified.

use auth_verifier::token::{RevocationEntry, RevocationKind};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult};
use crate::domain::now_ms;

fn kind_name(kind: RevocationKind) -> &'static str {
    match kind {
        RevocationKind::Session => "session",
        RevocationKind::User => "user",
        RevocationKind::Tenant => "tenant",
        RevocationKind::Key => "key",
        RevocationKind::ApiToken => "api_token",
    }
}

fn entry(row: &AnyRow) -> StoreResult<Option<RevocationEntry>> {
    let kind: String = row.try_get("kind")?;
    let kind = match kind.as_str() {
        "session" => RevocationKind::Session,
        "user" => RevocationKind::User,
        "tenant" => RevocationKind::Tenant,
        "key" => RevocationKind::Key,
        "api_token" => RevocationKind::ApiToken,
        _ => return Ok(None),
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

impl Store {
    /// Append an entry (its `seq` is assigned here) and return it.
    pub async fn add_revocation(&self, mut entry: RevocationEntry) -> StoreResult<RevocationEntry> {
        let row = sqlx::query(
            "INSERT INTO revocations (tenant, kind, subject, iat_cutoff, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
        )
        .bind(&entry.tenant)
        .bind(kind_name(entry.kind))
        .bind(&entry.id)
        .bind(entry.iat_cutoff)
        .bind(entry.expires_at)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        entry.seq = row.try_get("seq")?;
        Ok(entry)
    }

    /// Entries still in force, optionally only those after `after_seq`, in feed order.
    pub async fn revocations(&self, after_seq: i64) -> StoreResult<Vec<RevocationEntry>> {
        let rows = sqlx::query(
            "SELECT seq, tenant, kind, subject, iat_cutoff, expires_at FROM revocations \
             WHERE seq > $1 AND expires_at > $2 ORDER BY seq",
        )
        .bind(after_seq)
        .bind(now_ms() / 1000)
        .fetch_all(self.pool())
        .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            entries.extend(entry(row)?);
        }
        Ok(entries)
    }

    /// The highest `seq` ever assigned (0 for none).
    pub async fn revocation_cursor(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM revocations")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("seq")?)
    }

    /// Forget entries whose tokens have all expired (keeping the newest, so the cursor
    /// never goes backwards).
    pub async fn purge_revocations(&self) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM revocations WHERE expires_at < $1 AND seq < (SELECT MAX(seq) FROM revocations)",
        )
        .bind(now_ms() / 1000)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
