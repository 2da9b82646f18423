//! The verifier's one error enum: why a token is refused, or why a call to the API failed.
//! Each variant documents the status a client sees; none of them carries a token.

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No bearer token in the request: `401` with a bare `Bearer realm=…` challenge.
    #[error("no bearer token")]
    MissingToken,
    /// A token that does not verify (signature, algorithm, claims, expiry, unknown key, an
    /// inactive machine token): `401`, `error="invalid_token"`.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// A valid token cut off by a revocation entry: `401`, `error="invalid_token"`.
    #[error("token revoked")]
    Revoked,
    /// The revocation feed has been down longer than the staleness limit: `401`,
    /// `error="invalid_token"`, rather than trusting a stale list.
    #[error("revocation list is stale")]
    Stale,
    /// A good token of a tenant this verifier does not accept: `403`,
    /// `error="insufficient_scope"`.
    #[error("tenant not accepted here")]
    TenantNotAccepted,
    /// The verifier could not reach the API or understand its answer. Logged with its chain;
    /// a client whose token depended on it gets `401` with a generic description, never a 5xx.
    #[error("API request failed: {0}")]
    Upstream(String),
}

impl Error {
    /// Text for the `error_description` of the challenge (never includes token material).
    pub fn description(&self) -> &'static str {
        match self {
            Error::MissingToken => "no bearer token",
            Error::InvalidToken(why) => why,
            Error::Revoked => "the token has been revoked",
            Error::Stale => "the verifier cannot currently confirm revocations",
            Error::TenantNotAccepted => "the token's tenant is not accepted here",
            Error::Upstream(_) => "the token cannot be checked now",
        }
    }

    /// The `outcome` label of the request metric.
    pub fn outcome(&self) -> &'static str {
        match self {
            Error::MissingToken => "missing",
            Error::InvalidToken(_) => "invalid",
            Error::Revoked => "revoked",
            Error::Stale => "stale",
            Error::TenantNotAccepted => "forbidden",
            Error::Upstream(_) => "unavailable",
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's Display never includes headers, so the API token cannot leak here.
        Error::Upstream(format!("{e:#}"))
    }
}
