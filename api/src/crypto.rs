//! Small cryptographic helpers on aws-lc: the master key that encrypts secrets at rest
//! (AES-256-GCM), random secrets, and SHA-256 digests for high-entropy tokens.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// The 32-byte key that encrypts secrets at rest. Never printed: `Debug` shows a placeholder.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// Parse a base64 (standard or URL-safe) key of exactly 32 bytes.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let bytes = STANDARD
            .decode(value)
            .or_else(|_| URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')))
            .map_err(|_| "must be base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must decode to exactly 32 bytes".to_owned())?;
        Ok(Self(key))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        fill_random(&mut key);
        Self(key)
    }

    /// The key in standard base64, for writing the dev key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// HMAC-SHA256 of `value` under a key derived from the master key, bound to `context`;
    /// base64url. For low-entropy secrets (emailed codes): a stolen database alone does not
    /// let anyone try the million six-digit codes offline.
    pub fn keyed_hash(&self, context: &str, value: &str) -> String {
        use aws_lc_rs::hmac;
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &self.0),
            b"auth-api keyed hash v1",
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        let mut context_ctx = hmac::Context::with_key(&key);
        context_ctx.update(context.as_bytes());
        context_ctx.update(&[0]);
        context_ctx.update(value.as_bytes());
        URL_SAFE_NO_PAD.encode(context_ctx.sign().as_ref())
    }

    fn cipher(&self) -> RandomizedNonceKey {
        RandomizedNonceKey::new(&AES_256_GCM, &self.0)
            .expect("a 32-byte key is a valid AES-256 key")
    }

    /// Encrypt `plaintext`; `context` is bound as associated data so a ciphertext cannot be
    /// moved to another column or row. Returns base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut buffer = plaintext.to_vec();
        let nonce = self
            .cipher()
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut buffer)
            .expect("AES-GCM sealing does not fail for in-memory buffers");
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&buffer);
        STANDARD.encode(out)
    }

    /// Decrypt what [`MasterKey::seal`] produced with the same `context`; `None` when the
    /// value was tampered with, belongs elsewhere, or was sealed under another key.
    pub fn open(&self, context: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .cipher()
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// Fill `buf` from the system's secure random source.
pub fn fill_random(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("the system random source is available");
}

/// A new random secret of `bytes` bytes, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A uniformly random code of `digits` decimal digits (leading zeros kept).
pub fn random_digits(digits: u32) -> String {
    (0..digits)
        .map(|_| {
            // Rejection sampling: bytes of 250 and above would bias the digits.
            loop {
                let mut byte = [0u8; 1];
                fill_random(&mut byte);
                if byte[0] < 250 {
                    return char::from(b'0' + byte[0] % 10);
                }
            }
        })
        .collect()
}

/// Compare two secrets (or their hashes) in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// SHA-256 of `value`, base64url: how high-entropy secrets (refresh and machine tokens) are
/// stored. A slow hash adds nothing for 256-bit random secrets.
pub fn token_hash(value: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let key = MasterKey::generate();
        let sealed = key.seal("signing_keys:k1", b"secret");
        assert_eq!(
            key.open("signing_keys:k1", &sealed).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(key.open("signing_keys:k2", &sealed), None);
        assert_eq!(MasterKey::generate().open("signing_keys:k1", &sealed), None);
    }

    #[test]
    fn keyed_hashes_depend_on_key_context_and_value() {
        let key = MasterKey::generate();
        let a = key.keyed_hash("otp:1", "123456");
        assert_eq!(a, key.keyed_hash("otp:1", "123456"));
        assert_ne!(a, key.keyed_hash("otp:2", "123456"));
        assert_ne!(a, key.keyed_hash("otp:1", "123457"));
        assert_ne!(a, MasterKey::generate().keyed_hash("otp:1", "123456"));
        assert!(constant_time_eq(&a, &a.clone()));
        assert!(!constant_time_eq(&a, &key.keyed_hash("otp:1", "000000")));
    }

    #[test]
    fn codes_have_the_asked_length_and_only_digits() {
        for digits in [4, 6, 8] {
            let code = random_digits(digits);
            assert_eq!(code.len(), digits as usize);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| random_digits(6)).collect();
        assert!(distinct.len() > 45);
    }

    #[test]
    fn master_key_parsing_names_the_problem() {
        assert!(
            MasterKey::parse("c2hvcnQ=")
                .unwrap_err()
                .contains("32 bytes")
        );
        assert!(MasterKey::parse("!!!").unwrap_err().contains("base64"));
        let key = MasterKey::generate();
        assert!(MasterKey::parse(&key.to_base64()).is_ok());
    }
}
