//! Providers' signing keys and id_token checks. Keys are cached per JWKS URL; an id_token
//! whose `kid` is unknown makes one refetch, at most once per the configured interval per
//! URL, so invented `kid`s cannot make us flood the provider. jsonwebtoken verifies the
//! signature (RS256, PS256, ES256, EdDSA and their siblings; `none` and HMAC never).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::outbound::Outbound;
use crate::service::{Error, Result};

/// Algorithms an id_token may be signed with.
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Clock skew allowed on `exp` and `iat`, seconds.
pub(super) const LEEWAY: u64 = 60;

const INVALID: Error = Error::WrongSecret("the id_token is invalid");

#[derive(Debug, Default)]
struct Entry {
    keys: Vec<Jwk>,
    fetched: Option<Instant>,
}

/// JWK sets by URL.
#[derive(Debug)]
pub(super) struct JwksCache {
    min_refetch: Duration,
    entries: tokio::sync::Mutex<HashMap<String, Entry>>,
}

/// The claims of an id_token we read.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct IdClaims {
    pub(super) sub: String,
    /// Expiry, seconds (required: jsonwebtoken checks it).
    pub(super) exp: i64,
    #[serde(default)]
    pub(super) azp: Option<String>,
    #[serde(default)]
    pub(super) aud: Audience,
    #[serde(default)]
    pub(super) iat: Option<i64>,
    #[serde(default)]
    pub(super) nonce: Option<String>,
    #[serde(default)]
    pub(super) email: Option<String>,
    #[serde(default)]
    pub(super) email_verified: Option<Verified>,
    #[serde(default)]
    pub(super) name: Option<String>,
}

/// `aud`: one string or several.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
    /// Absent.
    #[default]
    None,
}

impl Audience {
    fn values(&self) -> Vec<&str> {
        match self {
            Audience::One(one) => vec![one.as_str()],
            Audience::Many(many) => many.iter().map(String::as_str).collect(),
            Audience::None => vec![],
        }
    }
}

/// `email_verified`: a boolean, or Apple's `"true"`/`"false"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Verified {
    /// The standard form.
    Bool(bool),
    /// Apple's string form.
    Text(String),
}

impl Verified {
    pub(super) fn is_true(&self) -> bool {
        match self {
            Verified::Bool(b) => *b,
            Verified::Text(t) => t.eq_ignore_ascii_case("true"),
        }
    }
}

/// What an id_token must satisfy besides its signature.
pub(super) struct Expect<'a> {
    /// `iss`, exactly.
    pub(super) issuer: &'a str,
    /// Our client ids: `aud` must contain one, `azp` (when present) must be one.
    pub(super) client_ids: &'a [String],
}

impl JwksCache {
    pub(super) fn new(min_refetch: Duration) -> Self {
        Self {
            min_refetch,
            entries: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The key for `kid` at `url`: from the cache, or after one refetch when the kid is
    /// unknown and the last fetch is older than the interval.
    async fn key(
        &self,
        outbound: &Outbound,
        url: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Jwk> {
        let mut entries = self.entries.lock().await;
        let entry = entries.entry(url.to_owned()).or_default();
        if let Some(key) = pick(&entry.keys, kid, alg) {
            return Ok(key);
        }
        let may_fetch = entry
            .fetched
            .is_none_or(|at| at.elapsed() >= self.min_refetch);
        if !may_fetch {
            return Err(INVALID);
        }
        entry.fetched = Some(Instant::now());
        let (status, doc) = outbound.get_json(url, None).await?;
        if !status.is_success() {
            return Err(Error::Provider(format!(
                "the provider's JWKS answered {status}"
            )));
        }
        let keys = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| Error::Provider("the provider's JWKS has no keys".into()))?;
        // A key we cannot use (another type, a private part, …) is skipped, not fatal.
        entry.keys = keys
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .collect();
        pick(&entry.keys, kid, alg).ok_or(INVALID)
    }

    /// Check an id_token: header algorithm among [`ALLOWED`], signature by the provider's
    /// key, `iss` exact, `aud`/`azp` ours, `exp` in the future, `iat` present and not ahead.
    /// The nonce is the caller's to check.
    pub(super) async fn verify(
        &self,
        outbound: &Outbound,
        jwks_url: &str,
        token: &str,
        expect: &Expect<'_>,
    ) -> Result<IdClaims> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| INVALID)?;
        if !ALLOWED.contains(&header.alg) {
            return Err(INVALID);
        }
        let jwk = self
            .key(outbound, jwks_url, header.kid.as_deref(), header.alg)
            .await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| INVALID)?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[expect.issuer]);
        validation.set_audience(expect.client_ids);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY;
        let data =
            jsonwebtoken::decode::<IdClaims>(token, &key, &validation).map_err(|_| INVALID)?;
        let claims = data.claims;
        let now = crate::domain::now_ms() / 1000;
        match claims.iat {
            Some(iat) if iat <= now + LEEWAY as i64 => {}
            _ => return Err(INVALID),
        }
        let audiences = claims.aud.values();
        let ours = |v: &str| expect.client_ids.iter().any(|c| c == v);
        if let Some(azp) = &claims.azp
            && !ours(azp)
        {
            return Err(INVALID);
        }
        if audiences.len() > 1 && claims.azp.is_none() {
            return Err(INVALID);
        }
        if claims.sub.is_empty() {
            return Err(INVALID);
        }
        Ok(claims)
    }
}

/// The key with `kid` (or the only key usable for `alg` when the token names none); a JWK
/// that names an `alg` must name this one.
fn pick(keys: &[Jwk], kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    let fits = |k: &&Jwk| {
        k.common
            .key_algorithm
            .is_none_or(|ka| serde_json::to_value(ka).ok() == serde_json::to_value(alg).ok())
    };
    match kid {
        Some(kid) => keys
            .iter()
            .filter(fits)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None => {
            let mut usable = keys.iter().filter(fits);
            let first = usable.next()?;
            usable.next().is_none().then(|| first.clone())
        }
    }
}
