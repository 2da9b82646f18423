//! Brute-force protection: rate limits per IP and per email on the operations that check a
//! secret, hash a password or send mail, and a lockout with growing delay after failed
//! sign-ins. Each
//! operation counts, however many of them one request packs in aliases or a batch, because
//! the resolvers call in here one by one.

use std::sync::LazyLock;

use super::{Auth, Device, Error, Result};
use crate::crypto;
use crate::domain::{Email, Tenant, now_ms};
use crate::store::limits::{Bucket, Guard, LockSchedule};

/// The guarded operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guarded {
    SignIn,
    SignUp,
    RequestOtp,
    VerifyOtp,
    RequestPasswordReset,
    ChangePassword,
    /// A second factor checked: `verifyMfa`, confirming an enrolment, `disableTotp`,
    /// `regenerateRecoveryCodes` (counted per IP and per user).
    VerifyMfa,
    /// `startPasskeySignIn`: counted per IP (both buckets), as it writes a challenge for
    /// anyone.
    PasskeySignIn,
    /// `startPasskeyRegistration`: per IP and per user.
    PasskeyRegistration,
    /// `startTotpEnrollment`: per IP and per user, as it renders a QR code and writes a
    /// pending secret and an audit event each time.
    TotpEnrollment,
}

/// A limit: hits per window.
struct Rate {
    max: f64,
    window_ms: i64,
}

const MINUTE: i64 = 60_000;

impl Guarded {
    fn name(self) -> &'static str {
        match self {
            Self::SignIn => "signIn",
            Self::SignUp => "signUp",
            Self::RequestOtp => "requestOtp",
            Self::VerifyOtp => "verifyOtp",
            Self::RequestPasswordReset => "requestPasswordReset",
            Self::ChangePassword => "changePassword",
            Self::VerifyMfa => "verifyMfa",
            Self::PasskeySignIn => "startPasskeySignIn",
            Self::PasskeyRegistration => "startPasskeyRegistration",
            Self::TotpEnrollment => "startTotpEnrollment",
        }
    }

    /// (per IP, per email) at factor 1.
    fn rates(self) -> (Rate, Rate) {
        let rate = |max, window_ms| Rate { max, window_ms };
        match self {
            Self::SignIn => (rate(60.0, MINUTE), rate(10.0, MINUTE)),
            // A sign-up hashes a password and says whether the address is taken.
            Self::SignUp => (rate(30.0, MINUTE), rate(5.0, 10 * MINUTE)),
            Self::VerifyOtp => (rate(30.0, MINUTE), rate(10.0, MINUTE)),
            Self::RequestOtp => (rate(10.0, MINUTE), rate(5.0, 10 * MINUTE)),
            Self::RequestPasswordReset => (rate(10.0, MINUTE), rate(3.0, 10 * MINUTE)),
            Self::ChangePassword => (rate(30.0, MINUTE), rate(5.0, 10 * MINUTE)),
            Self::VerifyMfa => (rate(30.0, MINUTE), rate(10.0, MINUTE)),
            Self::PasskeySignIn => (rate(60.0, MINUTE), rate(60.0, MINUTE)),
            Self::PasskeyRegistration | Self::TotpEnrollment => {
                (rate(30.0, MINUTE), rate(10.0, 10 * MINUTE))
            }
        }
    }
}

/// Failed sign-ins allowed before the first lock.
const LOCK_AFTER: i64 = 5;
/// Length of the first lock; each further failure doubles it.
const FIRST_LOCK_MS: i64 = 30_000;
/// Longest lock.
const LONGEST_LOCK_MS: i64 = 3_600_000;
/// Failures this old no longer count.
const FORGET_AFTER_MS: i64 = 86_400_000;

/// How long an address is locked after `failures` consecutive failed sign-ins: nothing
/// before the fifth, then 30 s, 1 min, 2 min, … up to an hour.
pub fn lock_duration_ms(failures: i64) -> i64 {
    if failures < LOCK_AFTER {
        return 0;
    }
    let doublings = (failures - LOCK_AFTER).min(16) as u32;
    (FIRST_LOCK_MS << doublings).min(LONGEST_LOCK_MS)
}

/// The lockout's statements, built once.
static LOCK_SCHEDULE: LazyLock<LockSchedule> =
    LazyLock::new(|| LockSchedule::new(lock_duration_ms, LOCK_AFTER + 16));

/// `RATE_LIMITED` by a bucket of `op`, counted in the metrics.
fn rate_limited(op: Guarded, wait_ms: i64) -> Error {
    metrics::counter!("auth_rate_limited_total", "operation" => op.name()).increment(1);
    retry_after(wait_ms)
}

/// `RATE_LIMITED` by the lockout of `method`'s attempts, counted in the metrics.
fn locked(method: &'static str, wait_ms: i64) -> Error {
    metrics::counter!("auth_sign_ins_total", "method" => method, "outcome" => "locked")
        .increment(1);
    retry_after(wait_ms)
}

fn retry_after(wait_ms: i64) -> Error {
    Error::RateLimited {
        retry_after: (wait_ms.max(1) as u64).div_ceil(1000),
    }
}

impl Auth {
    /// Count one `op` for the client's IP and for `email` (as typed, trimmed and lowercased;
    /// for an operation of a signed-in user, their id); `RATE_LIMITED` when either is over
    /// its limit. Emails are counted by hash whether or not they have an account, or are
    /// even valid.
    pub(super) async fn throttle(
        &self,
        tenant: &Tenant,
        op: Guarded,
        email: &str,
        origin: &Device,
    ) -> Result<()> {
        let Some(buckets) = self.buckets(tenant, op, email, origin) else {
            return Ok(());
        };
        match self.store.hit(&buckets, now_ms()).await? {
            Some(wait_ms) => Err(rate_limited(op, wait_ms)),
            None => Ok(()),
        }
    }

    /// The buckets `op` counts for the client's IP and for `email`; `None` when the limits
    /// are off (`AUTH_RATE_LIMIT_FACTOR=0`).
    fn buckets(
        &self,
        tenant: &Tenant,
        op: Guarded,
        email: &str,
        origin: &Device,
    ) -> Option<[Bucket; 2]> {
        let factor = self.config.rate_limit_factor;
        if factor == 0.0 {
            return None;
        }
        let (per_ip, per_email) = op.rates();
        let bucket = |kind: &str, who: &str, rate: &Rate| Bucket {
            key: format!("{}:{}:{kind}:{who}", tenant.id, op.name()),
            max: ((rate.max * factor).ceil() as i64).max(1),
            window_ms: rate.window_ms,
        };
        Some([
            bucket("ip", origin.ip.as_deref().unwrap_or("unknown"), &per_ip),
            bucket(
                "email",
                &crypto::token_hash(&email.trim().to_lowercase()),
                &per_email,
            ),
        ])
    }

    /// A password sign-in's guard: [`Auth::throttle`] for `typed` (the address as typed),
    /// then, unless that refused, [`Auth::count_attempt`] for `email`; as one statement
    /// where the database allows (`Store::guard_sign_in`).
    pub(super) async fn guard_sign_in(
        &self,
        tenant: &Tenant,
        typed: &str,
        email: &Email,
        origin: &Device,
    ) -> Result<()> {
        let Some(buckets) = self.buckets(tenant, Guarded::SignIn, typed, origin) else {
            return self.count_attempt(tenant, email).await;
        };
        let now = now_ms();
        let guard = self
            .store
            .guard_sign_in(
                &buckets,
                &tenant.id,
                email.as_str(),
                now,
                FORGET_AFTER_MS,
                &LOCK_SCHEDULE,
            )
            .await?;
        match guard {
            Guard::Go => Ok(()),
            Guard::RateLimited(wait_ms) => Err(rate_limited(Guarded::SignIn, wait_ms)),
            Guard::Locked(until) => Err(locked("password", until - now)),
        }
    }

    /// Count a password sign-in attempt of the address before the password is checked;
    /// `RATE_LIMITED` (and nothing counted) while the address is locked. The count and the
    /// decision are one statement, so parallel attempts cannot slip past the lock: the fifth
    /// attempt in a row locks the address at once, before its own password is known, and a
    /// success forgets the count (in the transaction that starts its session).
    pub(super) async fn count_attempt(&self, tenant: &Tenant, email: &Email) -> Result<()> {
        self.count_locked(tenant, email.as_str(), "password").await
    }

    /// [`Auth::count_attempt`] for a second factor of `user_id`: the same lockout with its
    /// own count (`mfa:<user id>`), so five wrong codes in a row, over any number of
    /// mfaTokens, lock the user's second step for 30 s, then longer; a right code forgets
    /// the count ([`Auth::forget_factor_attempts`]).
    pub(super) async fn count_factor_attempt(&self, tenant: &Tenant, user_id: &str) -> Result<()> {
        self.count_locked(tenant, &factor_key(user_id), "mfa").await
    }

    /// Forget the counted second-factor attempts of `user_id` after a right one.
    pub(super) async fn forget_factor_attempts(
        &self,
        tenant: &Tenant,
        user_id: &str,
    ) -> Result<()> {
        Ok(self
            .store
            .forget_attempts(&tenant.id, &factor_key(user_id))
            .await?)
    }

    /// How long the second step of `user_id` stays locked, in seconds (at least 1).
    pub(super) async fn factor_lock_seconds(&self, tenant: &Tenant, user_id: &str) -> Result<u64> {
        let now = now_ms();
        let failures = self
            .store
            .sign_in_failures(&tenant.id, &factor_key(user_id))
            .await?;
        let wait = failures.map_or(0, |f| f.locked_until - now);
        Ok((wait.max(1) as u64).div_ceil(1000))
    }

    async fn count_locked(&self, tenant: &Tenant, key: &str, method: &'static str) -> Result<()> {
        let now = now_ms();
        let until = self
            .store
            .count_sign_in_attempt(&tenant.id, key, now, FORGET_AFTER_MS, &LOCK_SCHEDULE)
            .await?;
        match until {
            None => Ok(()),
            Some(until) => Err(locked(method, until - now)),
        }
    }
}

/// The lockout's key for the second factors of a user (`sign_in_failures.email` holds
/// addresses otherwise; an address never starts with `mfa:`).
fn factor_key(user_id: &str) -> String {
    format!("mfa:{user_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_from_the_fifth_failure_and_stop_at_an_hour() {
        assert_eq!(lock_duration_ms(1), 0);
        assert_eq!(lock_duration_ms(4), 0);
        assert_eq!(lock_duration_ms(5), 30_000);
        assert_eq!(lock_duration_ms(6), 60_000);
        assert_eq!(lock_duration_ms(7), 120_000);
        assert_eq!(lock_duration_ms(12), LONGEST_LOCK_MS);
        assert_eq!(lock_duration_ms(1_000), LONGEST_LOCK_MS);
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        let seconds = |ms| match retry_after(ms) {
            Error::RateLimited { retry_after } => retry_after,
            _ => unreachable!(),
        };
        assert_eq!(seconds(1), 1);
        assert_eq!(seconds(1_000), 1);
        assert_eq!(seconds(1_001), 2);
        assert_eq!(seconds(-5), 1);
    }
}
