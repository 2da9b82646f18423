//! The discovery document the API serves at `/.well-known/openid-configuration`, of which a
//! verifier reads the `issuer`.

use serde::{Deserialize, Serialize};

/// `/.well-known/openid-configuration`. Only `issuer` is required when one is read: the other
/// fields default to empty, so a minimal document (a test's or a benchmark's stand-in issuer)
/// parses too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    /// The `iss` of every token, and the base URL of the endpoints below.
    pub issuer: String,
    /// `{issuer}/.well-known/jwks.json`.
    #[serde(default)]
    pub jwks_uri: String,
    /// `{issuer}/introspect` (RFC 7662).
    #[serde(default)]
    pub introspection_endpoint: String,
    /// Always `["public"]`.
    #[serde(default)]
    pub subject_types_supported: Vec<String>,
    /// The `alg` of each published key, without repeats.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Always `["none"]`: the API has no client authentication at a token endpoint.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Always `["refresh_token"]`.
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
}

impl Discovery {
    /// The document of the API at `issuer` (no trailing slash) whose published keys have these
    /// algorithms (repeats are dropped, the first occurrence kept).
    pub fn new<'a>(issuer: &str, algs: impl IntoIterator<Item = &'a str>) -> Self {
        let mut unique: Vec<String> = Vec::new();
        for alg in algs {
            if !unique.iter().any(|a| a == alg) {
                unique.push(alg.to_owned());
            }
        }
        Discovery {
            issuer: issuer.to_owned(),
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            introspection_endpoint: format!("{issuer}/introspect"),
            subject_types_supported: vec!["public".into()],
            id_token_signing_alg_values_supported: unique,
            token_endpoint_auth_methods_supported: vec!["none".into()],
            grant_types_supported: vec!["refresh_token".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_document_has_the_apis_endpoints_and_parses_when_minimal() {
        let d = Discovery::new("https://auth.example", ["EdDSA", "ES256", "EdDSA"]);
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({
                "issuer": "https://auth.example",
                "jwks_uri": "https://auth.example/.well-known/jwks.json",
                "introspection_endpoint": "https://auth.example/introspect",
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["EdDSA", "ES256"],
                "token_endpoint_auth_methods_supported": ["none"],
                "grant_types_supported": ["refresh_token"],
            })
        );
        let minimal: Discovery = serde_json::from_str(r#"{"issuer":"http://x"}"#).unwrap();
        assert_eq!(minimal.issuer, "http://x");
        assert!(
            serde_json::from_str::<Discovery>("{}").is_err(),
            "issuer is required"
        );
    }
}
