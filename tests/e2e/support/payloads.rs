//! The common GraphQL operations and their typed answers: [`Gql`] wraps a whole answer (the
//! raw `serde_json::Value` stays reachable for tests that inspect errors or unusual shapes),
//! [`AuthPayload`] is the answer of every operation that signs in, [`GqlError`] one entry of
//! `errors`, [`MachineToken`] what `auth-api token create` prints.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A strong password for tests.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// `signUp` with `$email` and `$password` (and the name `Test`).
pub(crate) const SIGN_UP: &str = "mutation($email: String!, $password: String!) { signUp(input: {email: $email, password: $password, name: \"Test\"}) { accessToken refreshToken tokenType expiresIn user { id roles emails { primary active } } session { id method current device { os browser ip } } } }";
/// `signIn` with `$email` and `$password`.
pub(crate) const SIGN_IN: &str = "mutation($email: String!, $password: String!) { signIn(input: {email: $email, password: $password}) { accessToken refreshToken user { id roles } session { id } } }";
/// `refreshSession` with `$token`.
pub(crate) const REFRESH: &str = "mutation($token: String!) { refreshSession(refreshToken: $token) { accessToken refreshToken user { id roles } session { id } } }";

/// A whole GraphQL answer (`data` and `errors`). Dereferences to the JSON, so
/// `body["data"]["me"]` works as on a `Value` (and [`code`] takes either).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gql(pub(crate) Value);

impl Gql {
    /// `data.<field>` as a `T`; panics, showing the answer, when there are errors or the
    /// field does not have that shape.
    pub(crate) fn data<T: DeserializeOwned>(&self, field: &str) -> T {
        assert!(self.0["errors"].is_null(), "{field} failed: {}", self.0);
        serde_json::from_value(self.0["data"][field].clone())
            .unwrap_or_else(|error| panic!("data.{field}: {error} in {}", self.0))
    }

    /// The `extensions.code` of the first error; panics when there is none.
    pub(crate) fn code(&self) -> &str {
        code(&self.0)
    }

    /// The errors, in order (none on success).
    pub(crate) fn errors(&self) -> Vec<GqlError> {
        self.0["errors"]
            .as_array()
            .map(|errors| errors.iter().map(GqlError::from_json).collect())
            .unwrap_or_default()
    }

    /// The first error; panics when there is none.
    pub(crate) fn error(&self) -> GqlError {
        self.errors()
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no error in {}", self.0))
    }
}

impl Deref for Gql {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

impl Borrow<Value> for Gql {
    fn borrow(&self) -> &Value {
        &self.0
    }
}

impl fmt::Display for Gql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One entry of a GraphQL answer's `errors`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GqlError {
    /// `extensions.code` (empty when absent).
    pub(crate) code: String,
    /// `message`.
    pub(crate) message: String,
    /// `extensions` as sent (`retryAfter` …); `null` when absent.
    pub(crate) extensions: Value,
}

impl GqlError {
    fn from_json(error: &Value) -> Self {
        Self {
            code: error["extensions"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
            extensions: error["extensions"].clone(),
        }
    }
}

/// The `extensions.code` of the first error of an answer ([`Gql`], or one answer of a
/// batch); panics when there is none.
pub(crate) fn code<B: Borrow<Value>>(body: &B) -> &str {
    let body: &Value = body.borrow();
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// What signUp, signIn, refreshSession, verifyOtp and resetPassword answer, from a selection
/// that includes `accessToken refreshToken user { id roles } session { id }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "wire::AuthPayload")]
pub(crate) struct AuthPayload {
    /// `accessToken`.
    pub(crate) access_token: String,
    /// `refreshToken`.
    pub(crate) refresh_token: String,
    /// `user.id`.
    pub(crate) user_id: String,
    /// `session.id`.
    pub(crate) session_id: String,
    /// `user.roles`.
    pub(crate) roles: Vec<String>,
}

mod wire {
    //! The shape `AuthPayload` arrives in.

    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct AuthPayload {
        access_token: String,
        refresh_token: String,
        user: User,
        session: Session,
    }

    #[derive(Deserialize)]
    struct User {
        id: String,
        roles: Vec<String>,
    }

    #[derive(Deserialize)]
    struct Session {
        id: String,
    }

    impl From<AuthPayload> for super::AuthPayload {
        fn from(wire: AuthPayload) -> Self {
            Self {
                access_token: wire.access_token,
                refresh_token: wire.refresh_token,
                user_id: wire.user.id,
                session_id: wire.session.id,
                roles: wire.user.roles,
            }
        }
    }
}

/// A machine token as `auth-api token create` prints it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MachineToken {
    /// Its id (`id:` line).
    pub(crate) id: String,
    /// Its secret, `mt_…` (`secret:` line).
    pub(crate) secret: String,
}

impl MachineToken {
    /// Reads the `id:` and `secret:` lines of the CLI's output.
    pub(crate) fn from_cli(output: &str) -> Self {
        let field = |name: &str| {
            output
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .unwrap_or_else(|| panic!("no `{name}` in CLI output: {output}"))
                .trim()
                .to_owned()
        };
        Self {
            id: field("id:"),
            secret: field("secret:"),
        }
    }
}
