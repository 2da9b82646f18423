//! Error codes: the one place where service errors become GraphQL errors with the
//! contract's `extensions.code`.

use async_graphql::ErrorExtensions;

use crate::service::Error;

/// The contract's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No or invalid credentials.
    Unauthenticated,
    /// Valid credentials, not allowed.
    Forbidden,
    /// Malformed input.
    BadUserInput,
    /// No such thing.
    NotFound,
    /// Already exists.
    Conflict,
    /// Wrong email or password.
    InvalidCredentials,
    /// Too many attempts.
    RateLimited,
    /// The sign-in needs a second factor (`verifyMfa`) or an enrolment first.
    MfaRequired,
    /// Our fault.
    Internal,
}

impl ErrorCode {
    /// The code as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::InvalidCredentials => "INVALID_CREDENTIALS",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::MfaRequired => "MFA_REQUIRED",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// A GraphQL error with `code`.
pub fn coded(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code.as_str()))
}

impl ErrorExtensions for Error {
    fn extend(&self) -> async_graphql::Error {
        let code = match self {
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::BadInput(_) => ErrorCode::BadUserInput,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::InvalidCredentials | Error::WrongSecret(_) => ErrorCode::InvalidCredentials,
            Error::Provider(message) => {
                tracing::warn!(error = %message, "provider call failed");
                ErrorCode::Internal
            }
            Error::RateLimited { retry_after } => {
                let retry_after = *retry_after;
                return async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
                    ext.set("code", ErrorCode::RateLimited.as_str());
                    ext.set("retryAfter", retry_after);
                });
            }
            Error::MfaRequired(required) => {
                let required = required.clone();
                return async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
                    ext.set("code", ErrorCode::MfaRequired.as_str());
                    ext.set("mfaToken", required.mfa_token.as_str());
                    ext.set("methods", required.methods.clone());
                    ext.set("expiresIn", required.expires_in);
                    if let Some(options) = &required.passkey_options
                        && let Ok(value) = async_graphql::Value::from_json(options.clone())
                    {
                        ext.set("passkeyOptions", value);
                    }
                });
            }
            Error::BadField { field, message } => {
                let field = field.clone();
                return async_graphql::Error::new(message.clone()).extend_with(|_, ext| {
                    ext.set("code", ErrorCode::BadUserInput.as_str());
                    ext.set("field", field.as_str());
                });
            }
            Error::Internal(error) => {
                crate::telemetry::failure("internal error", error.as_ref());
                ErrorCode::Internal
            }
        };
        coded(code, self.to_string())
    }
}

/// `.gql()` turns a service result into a resolver result with the right code.
pub trait GqlResultExt<T> {
    /// Map the error through [`ErrorExtensions`].
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResultExt<T> for Result<T, Error> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|error| error.extend())
    }
}
