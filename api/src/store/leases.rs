//! Leases: which replica runs a periodic job (the janitor's rounds) until when. A claim is
//! one statement that succeeds only when no other holder's lease is still running, so of
//! replicas racing for it exactly one wins, and a replica that dies holding one is replaced
//! once it expires.

use super::{Store, StoreResult};
use crate::domain::Millis;

impl Store {
    /// Claim `job` for `holder` until `until` (ms), unless a lease (anyone's, this holder's
    /// too: a round is due once per lease) runs past `now`; whether this call claimed it.
    pub async fn claim_lease(
        &self,
        job: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO janitor_leases (job, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE janitor_leases.until <= $4",
        )
        .bind(job)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Give `job` back if `holder` holds it (a replica stopping), so the next replica to
    /// look runs it without waiting for the lease to run out.
    pub async fn release_lease(&self, job: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("UPDATE janitor_leases SET until = 0 WHERE job = $1 AND holder = $2")
            .bind(job)
            .bind(holder)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }
}
