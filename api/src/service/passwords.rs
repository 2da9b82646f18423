//! Password hashing with argon2id at OWASP's minimum (m = 19456 KiB, t = 2, p = 1), on
//! blocking threads, bounded so a burst of sign-ins cannot exhaust memory.

use std::sync::{Arc, LazyLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// argon2id memory cost, KiB.
pub const MEMORY_KIB: u32 = 19_456;
/// argon2id passes.
pub const ITERATIONS: u32 = 2;
/// argon2id lanes.
pub const PARALLELISM: u32 = 1;

/// The hasher with the parameters above.
pub fn argon2() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes run at most this many at once (two per core): each holds 19 MiB.
static PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(Semaphore::new(cores * 2))
});

/// A hash of a random password, verified against when the account is unknown so that an
/// unknown email costs the same as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let secret = crate::crypto::random_token(24);
    argon2()
        .hash_password(secret.as_bytes())
        .expect("hashing a random password")
        .to_string()
});

/// Hash a new password into a PHC string.
pub async fn hash(password: &Password) -> anyhow::Result<String> {
    let password = password.expose().to_owned();
    let _permit = PERMITS.clone().acquire_owned().await?;
    let hash = tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("argon2 hashing failed: {error}"))
    })
    .await??;
    Ok(hash)
}

/// Whether `password` matches `hash`; with no hash, verifies against a dummy and answers
/// `false`, taking the same time.
pub async fn verify(password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
    let known = hash.is_some();
    let hash = hash.map_or_else(|| DUMMY_HASH.clone(), str::to_owned);
    let password = password.to_owned();
    let _permit = PERMITS.clone().acquire_owned().await?;
    let matches = tokio::task::spawn_blocking(move || {
        argon2()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await?;
    Ok(known && matches)
}

/// Compute the dummy hash now rather than on the first unknown email.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}
