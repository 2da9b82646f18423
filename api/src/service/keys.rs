//! Signing keys: the current key signs access tokens; retired keys stay published in the
//! JWKS until every token they signed has expired. Keys live in the database (private parts
//! sealed with the master key) so that every replica signs and publishes the same set.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use auth_protocol::{AccessClaims, Jwk, JwkSet};
use aws_lc_rs::signature::Ed25519KeyPair;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

use crate::crypto::MasterKey;
use crate::domain::{Millis, now_ms};
use crate::store::Store;
use crate::store::keys::StoredKey;

/// A key that can sign.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
}

/// The keys as last loaded.
struct KeySet {
    /// Keys that sign now or will, oldest first, each until its `retired_at` (ms).
    signing: Vec<(Option<Millis>, Arc<SigningKey>)>,
    verifying: Vec<(String, Algorithm, DecodingKey)>,
    jwks: Arc<JwkSet>,
    loaded: Instant,
}

/// Why a bearer JWT was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Malformed, forged, expired, or for another issuer or audience.
    #[error("invalid token")]
    Invalid,
}

/// The signing and verification keys, reloaded from the store now and then.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<RwLock<KeySet>>,
    store: Store,
    master: MasterKey,
    /// How long retired keys stay published (the access-token lifetime plus leeway).
    publish_for_ms: Millis,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").finish_non_exhaustive()
    }
}

/// Leeway on `exp` when the API checks its own tokens.
const LEEWAY_SECONDS: u64 = 5;
/// How often keys are reloaded so that a rotation on another replica is seen.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

impl KeyRing {
    /// Load the keys, first adding the operator's key file (if configured and new) or a
    /// generated Ed25519 key (if there is no current key).
    pub async fn load(
        store: Store,
        master: MasterKey,
        key_file: Option<&std::path::Path>,
        access_ttl_seconds: i64,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<Self> {
        let publish_for_ms = (access_ttl_seconds + 60) * 1000;
        if let Some(path) = key_file {
            let pem = std::fs::read(path).with_context(|| {
                format!("AUTH_SIGNING_KEY_FILE {} cannot be read", path.display())
            })?;
            let key = key_from_pem(&pem, &master).with_context(|| {
                format!(
                    "AUTH_SIGNING_KEY_FILE {} is not a usable key",
                    path.display()
                )
            })?;
            let current = store.signing_keys(now_ms()).await?;
            if current.first().map(|k| &k.kid) != Some(&key.kid) {
                store.add_signing_key(&key, key.created_at).await?;
            }
        } else if store
            .signing_keys(now_ms())
            .await?
            .iter()
            .all(|k| k.retired_at.is_some())
        {
            let key = generate_ed25519(&master)?;
            store.add_signing_key(&key, key.created_at).await?;
        }
        let set = build(&store, &master, publish_for_ms).await?;
        Ok(Self {
            inner: Arc::new(RwLock::new(set)),
            store,
            master,
            publish_for_ms,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// Add a newly generated key, published at once and signing after `prepublish`; the
    /// key it replaces signs until then and stays published until its tokens have expired.
    /// Publishing first lets every replica (which reload every 30 s) and every verifier
    /// (which refetch the JWK set for an unknown `kid` at most once a minute by default)
    /// know the key before the first token it signs reaches them.
    pub async fn rotate(
        store: &Store,
        master: &MasterKey,
        prepublish: Duration,
    ) -> anyhow::Result<StoredKey> {
        let key = generate_ed25519(master)?;
        let signs_from = key.created_at + Millis::try_from(prepublish.as_millis())?;
        store.add_signing_key(&key, signs_from).await?;
        Ok(key)
    }

    /// Withdraw a key at once (it leaked, say): it stops signing and is no longer published,
    /// and its `key` entry (kept until `horizon`, seconds) goes on the revocation feed in the
    /// same transaction. When it is the current key, a new one is generated first; its kid
    /// is returned.
    pub async fn withdraw(
        store: &Store,
        master: &MasterKey,
        kid: &str,
        horizon: i64,
    ) -> anyhow::Result<Option<String>> {
        let keys = store.signing_keys(0).await?;
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .with_context(|| format!("no signing key {kid}"))?;
        let replacement = if key.retired_at.is_none_or(|at| at > now_ms()) {
            Some(Self::rotate(store, master, Duration::ZERO).await?.kid)
        } else {
            None
        };
        store.delete_signing_key(kid, horizon).await?;
        Ok(replacement)
    }

    /// Reload from the store.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let set = build(&self.store, &self.master, self.publish_for_ms).await?;
        *self.inner.write().expect("key lock") = set;
        Ok(())
    }

    /// Reload if the last load is older than the reload interval.
    pub async fn reload_if_stale(&self) {
        let stale = self.inner.read().expect("key lock").loaded.elapsed() > RELOAD_EVERY;
        if stale && let Err(error) = self.reload().await {
            tracing::warn!(error = %error, "signing keys not reloaded");
        }
    }

    /// The published JWK set.
    pub fn jwks(&self) -> Arc<JwkSet> {
        self.inner.read().expect("key lock").jwks.clone()
    }

    /// Sign access-token claims with the current key.
    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let key = current(&self.inner.read().expect("key lock").signing, now_ms());
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .context("signing an access token failed")
    }

    /// Verify an access token's signature (with the algorithm of the key its `kid` names,
    /// never the token's own choice), issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let set = self.inner.read().expect("key lock");
        let (_, alg, key) = set
            .verifying
            .iter()
            .find(|(k, _, _)| *k == kid)
            .ok_or(TokenError::Invalid)?;
        if header.alg != *alg {
            return Err(TokenError::Invalid);
        }
        let validation =
            auth_protocol::validation(*alg, &self.issuer, &self.audience, LEEWAY_SECONDS);
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)
    }
}

async fn build(
    store: &Store,
    master: &MasterKey,
    publish_for_ms: Millis,
) -> anyhow::Result<KeySet> {
    let now = now_ms();
    let stored = store.signing_keys(now - publish_for_ms).await?;
    let mut signing = Vec::new();
    let mut verifying = Vec::new();
    let mut jwks = JwkSet::default();
    for key in &stored {
        let jwk: Jwk = serde_json::from_str(&key.public_jwk).context("stored JWK is malformed")?;
        let alg = jwk
            .algorithm()
            .context("stored JWK has an unsupported algorithm")?;
        let decoding = jwk
            .decoding_key()
            .context("stored JWK is not a usable key")?;
        if key.retired_at.is_none_or(|at| at > now) {
            let pem = master
                .open(&seal_context(&key.kid), &key.sealed_private_key)
                .context("a signing key cannot be decrypted: is AUTH_MASTER_KEY the key it was sealed with?")?;
            let encoding = encoding_key(alg, &pem)?;
            signing.push((
                key.retired_at,
                Arc::new(SigningKey {
                    kid: key.kid.clone(),
                    alg,
                    encoding,
                }),
            ));
        }
        verifying.push((key.kid.clone(), alg, decoding));
        jwks.keys.push(jwk);
    }
    anyhow::ensure!(!signing.is_empty(), "there is no current signing key");
    // Stored newest first; the oldest key still signing comes first.
    signing.reverse();
    Ok(KeySet {
        signing,
        verifying,
        jwks: Arc::new(jwks),
        loaded: Instant::now(),
    })
}

/// The key that signs at `now`: the oldest not yet retired, else the newest.
fn current<T: Clone>(signing: &[(Option<Millis>, T)], now: Millis) -> T {
    signing
        .iter()
        .find(|(retired_at, _)| retired_at.is_none_or(|at| at > now))
        .or(signing.last())
        .map(|(_, key)| key.clone())
        .expect("a key set has a signing key")
}

fn seal_context(kid: &str) -> String {
    format!("signing_keys:{kid}")
}

fn generate_ed25519(master: &MasterKey) -> anyhow::Result<StoredKey> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&rng)
        .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    stored_key(pem.as_bytes(), Algorithm::EdDSA, master)
}

fn encoding_key(alg: Algorithm, pem: &[u8]) -> anyhow::Result<EncodingKey> {
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
        _ => EncodingKey::from_rsa_pem(pem),
    };
    key.context("the private key PEM is not usable")
}

/// Build the stored form of a PEM private key: kid from the public key, JWK, sealed PEM.
fn stored_key(pem: &[u8], alg: Algorithm, master: &MasterKey) -> anyhow::Result<StoredKey> {
    let encoding = encoding_key(alg, pem)?;
    let public = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, alg)
        .context("cannot derive the public key")?;
    let mut value = serde_json::to_value(&public)?;
    // The kid is a digest of the public parts, so the same key file always has the same kid.
    let thumbprint_source = value
        .get("x")
        .or_else(|| value.get("n"))
        .cloned()
        .unwrap_or_default();
    let kid = crate::crypto::token_hash(&thumbprint_source.to_string())[..16].to_owned();
    value["kid"] = kid.clone().into();
    value["use"] = "sig".into();
    value["alg"] = format!("{alg:?}").into();
    let jwk: Jwk = serde_json::from_value(value).context("derived JWK is malformed")?;
    jwk.decoding_key().context("derived JWK is not usable")?;
    Ok(StoredKey {
        sealed_private_key: master.seal(&seal_context(&kid), pem),
        kid,
        alg: jwk.alg.clone(),
        public_jwk: serde_json::to_string(&jwk)?,
        created_at: now_ms(),
        retired_at: None,
    })
}

/// Read an operator's PEM private key: Ed25519 (EdDSA), P-256 (ES256) or RSA (RS256).
fn key_from_pem(pem: &[u8], master: &MasterKey) -> anyhow::Result<StoredKey> {
    let text = std::str::from_utf8(pem).context("not PEM text")?;
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .context("PEM body is not base64")?;
    if Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).is_ok() {
        return stored_key(pem, Algorithm::EdDSA, master);
    }
    if aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
    )
    .is_ok()
    {
        return stored_key(pem, Algorithm::ES256, master);
    }
    if aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).is_ok()
        || aws_lc_rs::rsa::KeyPair::from_der(&der).is_ok()
    {
        return stored_key(pem, Algorithm::RS256, master);
    }
    anyhow::bail!("expected an Ed25519, P-256 or RSA private key in PEM")
}

#[cfg(test)]
mod tests {
    use super::current;

    #[test]
    fn the_oldest_key_not_yet_retired_signs() {
        // Oldest first: "a" retires at 100, "b" (pre-published) at 200, "c" is the newest.
        let keys = [(Some(100), "a"), (Some(200), "b"), (None, "c")];
        assert_eq!(current(&keys, 50), "a");
        assert_eq!(current(&keys, 100), "b");
        assert_eq!(current(&keys, 199), "b");
        assert_eq!(current(&keys, 200), "c");
        // Everything retired (a reload is late): the newest still signs.
        assert_eq!(current(&keys[..2], 500), "b");
    }
}
