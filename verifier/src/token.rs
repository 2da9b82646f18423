//! The token format shared by the issuer (`auth-api`) and the verifier, so the two cannot
//! drift: access-token claims, the JWK set, and the revocation entries the API streams.

use serde::{Deserialize, Serialize};

/// Prefix of every machine token (`mt_…`); anything else presented as a bearer is a JWT.
pub const MACHINE_TOKEN_PREFIX: &str = "mt_";

/// Claims of an access token (contract: "Tokens").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the API's base URL (`AUTH_ISSUER`).
    pub iss: String,
    /// Audience the token is meant for.
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Tenant slug.
    pub tid: String,
    /// Session id.
    pub sid: String,
    /// Roles of the user in the tenant.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
}

/// One public key of the JWK set (RFC 7517), as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP` (Ed25519), `EC` (P-256) or `RSA`.
    pub kty: String,
    /// Key id, carried in every token header.
    pub kid: String,
    /// Algorithm: `EdDSA`, `ES256` or `RS256`. Verifiers take it from here, never from a token.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Curve for `OKP` and `EC` keys (`Ed25519`, `P-256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key (OKP) or x coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Modulus (RSA), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// Exponent (RSA), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// A JWK set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The published keys, newest first.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The algorithm this key verifies, or `None` for one this crate does not accept.
    pub fn algorithm(&self) -> Option<jsonwebtoken::Algorithm> {
        match (self.kty.as_str(), self.alg.as_str()) {
            ("OKP", "EdDSA") => Some(jsonwebtoken::Algorithm::EdDSA),
            ("EC", "ES256") => Some(jsonwebtoken::Algorithm::ES256),
            ("RSA", "RS256") => Some(jsonwebtoken::Algorithm::RS256),
            _ => None,
        }
    }

    /// The verification key for this JWK; `None` when a component is missing or malformed.
    pub fn decoding_key(&self) -> Option<jsonwebtoken::DecodingKey> {
        use jsonwebtoken::DecodingKey;
        match self.kty.as_str() {
            "OKP" => DecodingKey::from_ed_components(self.x.as_deref()?).ok(),
            "EC" => DecodingKey::from_ec_components(self.x.as_deref()?, self.y.as_deref()?).ok(),
            "RSA" => DecodingKey::from_rsa_components(self.n.as_deref()?, self.e.as_deref()?).ok(),
            _ => None,
        }
    }
}

/// What a revocation entry cuts off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationKind {
    /// Every token of the session `id`.
    Session,
    /// Tokens of the user `id` issued at or before `iat_cutoff`.
    User,
    /// Tokens of the tenant `id` (a slug) issued at or before `iat_cutoff`: access tokens by
    /// their `iat` claim, machine tokens by the `iat` of their introspection answer (written by
    /// `deleteTenant`).
    Tenant,
    /// Every token signed by the key `id` (a `kid`).
    Key,
    /// The machine token `id` (deleted).
    ApiToken,
}

/// One revocation, as listed at `/internal/revocations` and streamed at
/// `/internal/revocations/stream`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEntry {
    /// Position in the feed; the stream's event id.
    pub seq: i64,
    /// What is cut off.
    pub kind: RevocationKind,
    /// Tenant slug the entry belongs to.
    pub tenant: String,
    /// Session id, user id, tenant slug, key id or machine-token id, by `kind`.
    pub id: String,
    /// For `user` and `tenant`: tokens with `iat <= iat_cutoff` are revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_cutoff: Option<i64>,
    /// Seconds since the epoch after which no token the entry covers can still be valid,
    /// so the entry can be forgotten.
    pub expires_at: i64,
}

impl RevocationEntry {
    /// Whether this entry revokes the access token with these claims, signed by `kid`.
    pub fn revokes(&self, claims: &AccessClaims, kid: &str) -> bool {
        let cut = |iat: i64| self.iat_cutoff.is_none_or(|cutoff| iat <= cutoff);
        match self.kind {
            RevocationKind::Session => self.tenant == claims.tid && self.id == claims.sid,
            RevocationKind::User => {
                self.tenant == claims.tid && self.id == claims.sub && cut(claims.iat)
            }
            RevocationKind::Tenant => self.id == claims.tid && cut(claims.iat),
            RevocationKind::Key => self.id == kid,
            RevocationKind::ApiToken => false,
        }
    }

    /// Whether this entry revokes the machine token the API's introspection described with
    /// this `client_id` (token id), tenant `tid` and `iat` (seconds; `None` when the answer
    /// has none). Only two kinds reach machine tokens:
    ///
    /// | kind | revokes the machine token when |
    /// | --- | --- |
    /// | `api_token` | `client_id == id` (the token was deleted) |
    /// | `tenant` | `tid == id` and `iat <= iat_cutoff`; an entry without a cut-off, or an answer without `iat`, counts as covered |
    ///
    /// `session`, `user` and `key` entries concern access tokens only.
    pub fn revokes_machine(&self, client_id: &str, tid: &str, iat: Option<i64>) -> bool {
        match self.kind {
            RevocationKind::ApiToken => self.id == client_id,
            RevocationKind::Tenant => {
                self.id == tid
                    && match (iat, self.iat_cutoff) {
                        (Some(iat), Some(cutoff)) => iat <= cutoff,
                        _ => true,
                    }
            }
            RevocationKind::Session | RevocationKind::User | RevocationKind::Key => false,
        }
    }
}

/// The whole revocation list with the feed position it reflects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// The highest `seq` included; resume the stream from here.
    pub cursor: i64,
    /// Entries whose `expires_at` is still in the future.
    pub entries: Vec<RevocationEntry>,
}
