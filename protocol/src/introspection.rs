//! The RFC 7662 introspection answer, as `auth-api` gives it at `POST /introspect` and
//! `auth-verifier` gives it in turn: one type for both, so the two answers cannot drift.

use serde::{Deserialize, Serialize};

use crate::token::AccessClaims;

/// What kind of token an active introspection answer describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// A user's access token (a JWT): `access_token`.
    AccessToken,
    /// A machine token (`mt_…`): `machine_token`.
    MachineToken,
}

impl TokenType {
    /// The type's name on the wire: `access_token` or `machine_token`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenType::AccessToken => "access_token",
            TokenType::MachineToken => "machine_token",
        }
    }
}

/// An RFC 7662 introspection answer. Absent fields (`None`) are left out of the JSON, so an
/// inactive answer is exactly `{"active":false}` ([`Introspection::inactive`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introspection {
    /// Whether the token is active; when not, nothing else is said.
    pub active: bool,
    /// Access token or machine token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<TokenType>,
    /// Machine-token id (machine tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// User id (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Tenant slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// Session id (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Roles of the user in the tenant (access tokens; possibly empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Space-separated scopes (machine tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Issuer (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issued at, seconds since the epoch (a machine token's creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Expires at, seconds since the epoch; machine tokens have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Unique token id (access tokens, when the answerer knows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Introspection {
    /// The answer for a token that is not active, unknown, or none of the caller's business:
    /// `{"active":false}`.
    pub fn inactive() -> Self {
        Introspection::default()
    }

    /// The active answer for an access token with these claims: every claim.
    pub fn access_token(claims: &AccessClaims) -> Self {
        Introspection {
            active: true,
            token_type: Some(TokenType::AccessToken),
            sub: Some(claims.sub.clone()),
            tid: Some(claims.tid.clone()),
            sid: Some(claims.sid.clone()),
            roles: Some(claims.roles.clone()),
            iss: Some(claims.iss.clone()),
            aud: Some(claims.aud.clone()),
            iat: Some(claims.iat),
            exp: Some(claims.exp),
            jti: Some(claims.jti.clone()),
            ..Introspection::default()
        }
    }

    /// The active answer for the machine token `client_id` of tenant `tid`, with its
    /// space-separated `scope`, created at `iat` (seconds since the epoch).
    pub fn machine_token(
        client_id: impl Into<String>,
        tid: impl Into<String>,
        scope: impl Into<String>,
        iat: i64,
    ) -> Self {
        Introspection {
            active: true,
            token_type: Some(TokenType::MachineToken),
            client_id: Some(client_id.into()),
            tid: Some(tid.into()),
            scope: Some(scope.into()),
            iat: Some(iat),
            ..Introspection::default()
        }
    }

    /// Whether the space-separated `scope` holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split_ascii_whitespace().any(|s| s == scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inactive_is_active_false_and_nothing_else() {
        assert_eq!(
            serde_json::to_string(&Introspection::inactive()).unwrap(),
            r#"{"active":false}"#
        );
        let parsed: Introspection = serde_json::from_str(r#"{"active":false}"#).unwrap();
        assert_eq!(parsed, Introspection::inactive());
    }

    #[test]
    fn access_and_machine_answers_carry_their_fields() {
        let claims = AccessClaims {
            iss: "https://auth.example".into(),
            aud: "https://auth.example".into(),
            sub: "u1".into(),
            tid: "acme".into(),
            sid: "s1".into(),
            roles: vec![],
            iat: 10,
            exp: 910,
            jti: "j1".into(),
        };
        let access = serde_json::to_value(Introspection::access_token(&claims)).unwrap();
        assert_eq!(
            access,
            json!({
                "active": true, "token_type": "access_token", "sub": "u1", "tid": "acme",
                "sid": "s1", "roles": [], "iss": "https://auth.example",
                "aud": "https://auth.example", "iat": 10, "exp": 910, "jti": "j1",
            })
        );
        let machine = Introspection::machine_token("m1", "acme", "verify platform", 5);
        assert_eq!(
            serde_json::to_value(&machine).unwrap(),
            json!({
                "active": true, "token_type": "machine_token", "client_id": "m1",
                "tid": "acme", "scope": "verify platform", "iat": 5,
            })
        );
        let back: Introspection =
            serde_json::from_str(&serde_json::to_string(&machine).unwrap()).unwrap();
        assert_eq!(back, machine);
        assert!(machine.has_scope("verify") && machine.has_scope("platform"));
        assert!(!machine.has_scope("verif") && !machine.has_scope("admin"));
        assert!(!Introspection::inactive().has_scope("verify"));
        assert_eq!(TokenType::MachineToken.as_str(), "machine_token");
    }
}
