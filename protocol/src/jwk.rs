//! The JWK set (RFC 7517) the API publishes at `/.well-known/jwks.json`, and how a verifier
//! turns one key into an algorithm and a verification key.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwk_set_round_trips_with_use_renamed_and_absent_parts_left_out() {
        let set = JwkSet {
            keys: vec![Jwk {
                kty: "OKP".into(),
                kid: "k1".into(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
                crv: Some("Ed25519".into()),
                x: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into()),
                y: None,
                n: None,
                e: None,
            }],
        };
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(
            json,
            r#"{"keys":[{"kty":"OKP","kid":"k1","alg":"EdDSA","use":"sig","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#
        );
        assert_eq!(serde_json::from_str::<JwkSet>(&json).unwrap(), set);
        let jwk = &set.keys[0];
        assert_eq!(jwk.algorithm(), Some(jsonwebtoken::Algorithm::EdDSA));
        assert!(jwk.decoding_key().is_some());
        let mut odd = jwk.clone();
        odd.alg = "HS256".into();
        assert_eq!(odd.algorithm(), None, "no symmetric algorithms");
        odd.x = None;
        assert!(odd.decoding_key().is_none(), "a missing component");
    }
}
