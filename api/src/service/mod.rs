//! The rules, and the only layer that holds the [`Store`]: one file per aggregate or flow
//! (who is calling, sign-in, tokens, sessions, the account, codes by mail, limits, machine
//! tokens, tenants, the machine endpoints, audit), plus the stateful parts the service owns
//! ([`keys`], [`feed`], [`mail`]) and its life ([`Auth::open`], workers, shutdown). Nothing
//! here knows HTTP or GraphQL.

mod account;
mod admin_users;
mod audit;
mod caller;
mod challenges;
mod events;
pub mod feed;
pub mod keys;
mod limits;
mod machine;
mod machine_tokens;
pub mod mail;
mod mfa;
mod oauth;
mod passkeys;
pub mod passwords;
mod profile;
mod runtime;
mod sessions;
mod settings;
mod sign_in;
mod tenants;
mod tokens;

pub use admin_users::{AdminUserUpdate, UserPage};
pub use audit::AuditPage;
pub use caller::Caller;
pub use challenges::OtpChallenge;
pub use events::{SessionEvent, SessionEventKind, SessionEvents};
pub use limits::lock_duration_ms;
pub use machine::Reader;
pub use machine_tokens::CreatedApiToken;
pub use mfa::{
    DisableProof, Enroller, Factor, MfaRequired, MfaStatus, RecoveryCodes, TotpEnrollment,
};
pub use oauth::{CompleteOAuth, OAuthStart, ProviderSpec, ProviderTokens};
pub use profile::{ProfileUpdate, PublicProfile};
pub use runtime::{Purged, Workers, migrate};
pub use settings::apply_settings_patch;
pub use tokens::{Issued, TokenPair};

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::domain::{Device, FieldInvalid, Invalid, Tenant, TenantSlug};
use crate::store::{Store, StoreError};
use feed::Feed;
use keys::KeyRing;
use mail::Mailer;

/// What a service call can fail with. Each variant names the `extensions.code` the client
/// sees; internal errors are logged whole and answered with a generic message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `UNAUTHENTICATED`: no credentials, or ones that are not (or no longer) valid.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// `FORBIDDEN`: valid credentials that may not do this here.
    #[error("{0}")]
    Forbidden(String),
    /// `BAD_USER_INPUT`: a value the client sent is malformed.
    #[error("{0}")]
    BadInput(String),
    /// `BAD_USER_INPUT` about one field, named in `extensions.field` (a dotted path, or a
    /// JSON pointer inside a JSON value, as `metadata/level`).
    #[error("{message}")]
    BadField {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// `INTERNAL`, with a message that says which provider failed and how (down, slow,
    /// garbage): not the client's fault, and not ours either; nothing was written.
    #[error("{0}")]
    Provider(String),
    /// `NOT_FOUND`.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// `CONFLICT`: the thing exists already.
    #[error("{0}")]
    Conflict(String),
    /// `INVALID_CREDENTIALS`: the same answer for an unknown email and a wrong password.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// `INVALID_CREDENTIALS` for emailed secrets: a wrong, expired or used code or link.
    #[error("{0}")]
    WrongSecret(&'static str),
    /// `RATE_LIMITED`, with the seconds after which a retry can succeed.
    #[error("too many attempts; retry in {retry_after} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// `MFA_REQUIRED`: the first factor proved right, and the sign-in now waits for a
    /// second one (or for the enrolment the tenant demands); no session exists yet.
    #[error("a second factor is required to finish signing in")]
    MfaRequired(Box<mfa::MfaRequired>),
    /// `INTERNAL`: anything else; details are logged, never sent.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Error::BadInput(invalid.0)
    }
}

impl From<FieldInvalid> for Error {
    fn from(invalid: FieldInvalid) -> Self {
        if invalid.field.is_empty() {
            return Error::BadInput(invalid.message);
        }
        Error::BadField {
            field: invalid.field,
            message: invalid.message,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Error::Conflict(format!("{what} already exists")),
            StoreError::NotFound => Error::NotFound("record"),
            StoreError::Database(error) => Error::Internal(error.into()),
        }
    }
}

/// Result of a service call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The authentication service.
#[derive(Clone)]
pub struct Auth {
    store: Store,
    keys: KeyRing,
    feed: Feed,
    master: MasterKey,
    mailer: Mailer,
    oauth: oauth::OAuthRuntime,
    passkey_rp: passkeys::RelyingParty,
    config: Arc<Config>,
    profiles: Arc<profile::Schemas>,
    subscriptions: Arc<events::Subscriptions>,
    stopping: tokio::sync::watch::Sender<bool>,
    tenants: settings::TenantCache,
    /// This replica's name on the janitor's leases (a fresh id per start).
    replica: Arc<str>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// The tenant named by `X-Tenant` (or `default`), from this replica's cache (which
    /// hears of every change within a second, see `settings.rs`).
    pub async fn tenant(&self, slug: Option<&str>) -> Result<Tenant> {
        let slug = slug
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(TenantSlug::DEFAULT);
        let slug = TenantSlug::parse(slug).map_err(|_| Error::NotFound("tenant"))?;
        if let Some(tenant) = self.tenants.get(slug.as_str()) {
            return Ok(tenant);
        }
        let generation = self.tenants.generation();
        let tenant = match self.store.tenant_by_slug(slug.as_str()).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("tenant")),
            other => other?,
        };
        self.tenants.put(generation, tenant.clone());
        Ok(tenant)
    }
}

/// The user id of a user caller; machine tokens have no user.
fn user_of(caller: &Caller) -> Result<&str> {
    match caller {
        Caller::User { user_id, .. } => Ok(user_id),
        Caller::Machine { .. } => Err(Error::Forbidden(
            "this operation needs a signed-in user".into(),
        )),
    }
}
