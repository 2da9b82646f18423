//! Password hashing with argon2id at OWASP's minimum (m = 19456 KiB, t = 2, p = 1), on
//! blocking threads, one per core at a time so a burst of sign-ins cannot exhaust memory
//! and two 19 MiB working sets do not fight over one core's cache. A verify reuses one of
//! a few block buffers kept for the purpose instead of allocating (and faulting in, and
//! zeroing) 19 MiB each time: argon2 writes every block before it reads it, so a used
//! buffer needs no clearing.

use std::sync::{Arc, LazyLock, Mutex};

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher, Version};
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

/// Hashes run at most this many at once (one per core): each holds 19 MiB.
static PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(Semaphore::new(cores))
});

/// Block buffers for verifies, at most one per permit.
static BUFFERS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

fn take_buffer() -> Vec<Block> {
    BUFFERS
        .lock()
        .ok()
        .and_then(|mut buffers| buffers.pop())
        .unwrap_or_default()
}

fn give_back(buffer: Vec<Block>) {
    if let Ok(mut buffers) = BUFFERS.lock() {
        buffers.push(buffer);
    }
}

/// Whether `password` matches the PHC string `hash`, computed in `blocks` (grown if the
/// hash's parameters need more). The comparison is constant-time (`Output`'s `PartialEq`).
fn verify_in(blocks: &mut Vec<Block>, password: &[u8], hash: &str) -> bool {
    let Ok(phc) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(phc.algorithm.as_str()) else {
        return false;
    };
    let version = match phc.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&phc) else {
        return false;
    };
    let count = params.block_count();
    if blocks.len() < count {
        blocks.resize(count, Block::new());
    }
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let hasher = Argon2::new(algorithm, version, params);
    hasher
        .hash_password_into_with_memory(password, salt.as_ref(), out, &mut blocks[..count])
        .is_ok()
        && Output::new(out).is_ok_and(|computed| computed == *expected)
}

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
        let mut blocks = take_buffer();
        let matches = verify_in(&mut blocks, password.as_bytes(), &hash);
        give_back(blocks);
        matches
    })
    .await?;
    Ok(known && matches)
}

/// Compute the dummy hash now rather than on the first unknown email.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_buffer_verifies_like_a_fresh_one() {
        let hash = argon2()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        let other = argon2()
            .hash_password(b"battery staple")
            .unwrap()
            .to_string();
        let mut blocks = Vec::new();
        assert!(verify_in(&mut blocks, b"correct horse", &hash));
        // The buffer now holds the last hash's blocks: a wrong password still fails, the
        // right one of another hash still matches.
        assert!(!verify_in(&mut blocks, b"correct horsE", &hash));
        assert!(verify_in(&mut blocks, b"battery staple", &other));
        assert!(!verify_in(&mut blocks, b"correct horse", &other));
        assert!(!verify_in(&mut blocks, b"correct horse", "not a hash"));
        // Other parameters than ours (more memory, other passes) verify too.
        let params = Params::new(32 * 1024, 3, 1, None).unwrap();
        let bigger = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert!(verify_in(&mut blocks, b"correct horse", &bigger));
        assert!(!verify_in(&mut blocks, b"wrong", &bigger));
    }
}
