//! Signing keys (service-wide): private keys sealed with the master key, public JWKs.

use sqlx::Row;

use auth_protocol::RevocationEntry;

use super::revocations::record;
use super::{Store, StoreResult};
use crate::domain::Millis;

/// A signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id (`kid`).
    pub kid: String,
    /// JWS algorithm.
    pub alg: String,
    /// PKCS#8 DER sealed with the master key.
    pub sealed_private_key: String,
    /// Public JWK, JSON.
    pub public_jwk: String,
    /// Creation time.
    pub created_at: Millis,
    /// When a newer key replaced it (or will: a rotation publishes the new key before it
    /// signs, see [`crate::service::keys::KeyRing::rotate`]).
    pub retired_at: Option<Millis>,
}

impl Store {
    /// Keys that are current or retired after `retired_after`, newest first.
    pub async fn signing_keys(&self, retired_after: Millis) -> StoreResult<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_key, public_jwk, created_at, retired_at FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC",
        )
        .bind(retired_after)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredKey {
                    kid: row.try_get("kid")?,
                    alg: row.try_get("alg")?,
                    sealed_private_key: row.try_get("private_key")?,
                    public_jwk: row.try_get("public_jwk")?,
                    created_at: row.try_get("created_at")?,
                    retired_at: row.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Add `key` and retire the keys still current at `retire_others_at` (when `key` starts
    /// to sign), in one transaction.
    pub async fn add_signing_key(
        &self,
        key: &StoredKey,
        retire_others_at: Millis,
    ) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL OR retired_at > $1",
        )
        .bind(retire_others_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.sealed_private_key)
        .bind(&key.public_jwk)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete a key, so that it neither signs nor is published again, and write the feed
    /// entry that revokes what it signed (kept until `horizon`, seconds), in one
    /// transaction; `false` if there was no such key.
    pub async fn delete_signing_key(&self, kid: &str, horizon: i64) -> StoreResult<bool> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        record(&mut tx, &RevocationEntry::key(kid, horizon)).await?;
        tx.commit().await?;
        Ok(true)
    }
}
