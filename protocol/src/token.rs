//! Bearer tokens: the two kinds (access tokens and machine tokens, told apart by
//! [`MACHINE_TOKEN_PREFIX`]), the claims of an access token, and the one [`validation`] policy
//! both the issuer and the verifier apply to them.

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

/// Prefix of every machine token (`mt_…`); anything else presented as a bearer is a JWT.
pub const MACHINE_TOKEN_PREFIX: &str = "mt_";

/// Claims of an access token (contract: "Tokens").
///
/// Every field but `roles` is required when a token is decoded into this type; that is what
/// makes `iat` required (see [`validation`]).
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

/// The access-token validation policy of both `auth-api` and `auth-verifier`, for a key whose
/// JWK names `alg` (never the algorithm a token's header names):
///
/// - the signature must be made with `alg`: any other header `alg` is refused
///   (`InvalidAlgorithm`);
/// - `exp`, `iss`, `aud` and `sub` must be present (`MissingRequiredClaim`);
/// - `iss` must equal `issuer` and `aud` must equal (or, as a list, contain) `audience`;
/// - `exp` must not have passed, and `nbf`, when present, must have come, both give or take
///   `leeway_seconds` of clock skew;
/// - `iat` must be present too. `jsonwebtoken` cannot require it itself (it only knows `exp`,
///   `nbf`, `iss`, `aud` and `sub`), so it is required by decoding into [`AccessClaims`], whose
///   `iat` is not optional: always decode with `jsonwebtoken::decode::<AccessClaims>`.
///
/// This is the union of the two policies it replaces: the API's asked for `iat` (which
/// `jsonwebtoken` ignored; its `AccessClaims` required it) and did not check `nbf`, the
/// verifier's checked `nbf` and did not ask for `iat`.
pub fn validation(alg: Algorithm, issuer: &str, audience: &str, leeway_seconds: u64) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = leeway_seconds;
    validation
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::{DecodingKey, EncodingKey, Header};
    use serde_json::{Value, json};

    const SECRET: &[u8] = b"a test key, not a secret";

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            aud: "https://auth.example".into(),
            sub: "user-1".into(),
            tid: "acme".into(),
            sid: "session-1".into(),
            roles: vec!["admin".into(), "member".into()],
            iat: now(),
            exp: now() + 900,
            jti: "jti-1".into(),
        }
    }

    fn sign(alg: Algorithm, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn decode_as<T: serde::de::DeserializeOwned>(token: &str) -> Result<T, ErrorKind> {
        let policy = validation(
            Algorithm::HS256,
            "https://auth.example",
            "https://auth.example",
            5,
        );
        jsonwebtoken::decode::<T>(token, &DecodingKey::from_secret(SECRET), &policy)
            .map(|data| data.claims)
            .map_err(|e| e.into_kind())
    }

    fn decode(token: &str) -> Result<AccessClaims, ErrorKind> {
        decode_as(token)
    }

    fn with(changes: &[(&str, Value)]) -> Value {
        let mut v = serde_json::to_value(claims()).unwrap();
        for (k, val) in changes {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(*k);
            } else {
                v[*k] = val.clone();
            }
        }
        v
    }

    #[test]
    fn claims_round_trip_through_json_and_a_signed_token() {
        let c = claims();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<AccessClaims>(&json).unwrap(), c);
        let token = sign(Algorithm::HS256, &serde_json::to_value(&c).unwrap());
        assert_eq!(decode(&token).unwrap(), c);
        let no_roles = with(&[("roles", Value::Null)]);
        let parsed: AccessClaims = serde_json::from_value(no_roles).unwrap();
        assert!(parsed.roles.is_empty(), "roles default to none");
    }

    #[test]
    fn the_policy_refuses_a_token_without_iat() {
        let token = sign(Algorithm::HS256, &with(&[("iat", Value::Null)]));
        assert!(
            matches!(decode(&token), Err(ErrorKind::Json(_))),
            "{:?}",
            decode(&token)
        );
        // What the doc of `validation` says: `jsonwebtoken` cannot require `iat` itself.
        assert!(decode_as::<Value>(&token).is_ok());
    }

    #[test]
    fn the_policy_checks_nbf_when_present() {
        let future = sign(Algorithm::HS256, &with(&[("nbf", json!(now() + 60))]));
        assert_eq!(decode(&future), Err(ErrorKind::ImmatureSignature));
        let within_leeway = sign(Algorithm::HS256, &with(&[("nbf", json!(now() + 2))]));
        assert!(decode(&within_leeway).is_ok());
        let past = sign(Algorithm::HS256, &with(&[("nbf", json!(now() - 60))]));
        assert!(decode(&past).is_ok());
    }

    #[test]
    fn the_policy_is_pinned_to_the_keys_algorithm() {
        let token = sign(Algorithm::HS384, &serde_json::to_value(claims()).unwrap());
        assert_eq!(decode(&token), Err(ErrorKind::InvalidAlgorithm));
    }

    #[test]
    fn the_policy_requires_and_checks_exp_iss_aud_sub() {
        for claim in ["exp", "iss", "aud", "sub"] {
            let token = sign(Algorithm::HS256, &with(&[(claim, Value::Null)]));
            // The policy itself, whatever the claims are decoded into …
            assert_eq!(
                decode_as::<Value>(&token),
                Err(ErrorKind::MissingRequiredClaim(claim.into())),
                "{claim}"
            );
            // … and decoding into `AccessClaims`, which also requires them.
            assert!(decode(&token).is_err(), "{claim}");
        }
        let expired = sign(Algorithm::HS256, &with(&[("exp", json!(now() - 60))]));
        assert_eq!(decode(&expired), Err(ErrorKind::ExpiredSignature));
        let in_leeway = sign(Algorithm::HS256, &with(&[("exp", json!(now() - 2))]));
        assert!(decode(&in_leeway).is_ok());
        let issuer = sign(Algorithm::HS256, &with(&[("iss", json!("https://evil"))]));
        assert_eq!(decode(&issuer), Err(ErrorKind::InvalidIssuer));
        let audience = sign(Algorithm::HS256, &with(&[("aud", json!("https://evil"))]));
        assert_eq!(decode(&audience), Err(ErrorKind::InvalidAudience));
    }
}
