//! The rules: sign-up and sign-in, tokens and sessions, machine tokens, tenants. Plain
//! functions over the [`Store`], the [`KeyRing`] and the [`Feed`]; nothing here knows HTTP.

mod account;
mod challenges;
pub mod feed;
pub mod keys;
mod limits;
pub mod mail;
pub mod passwords;

pub use challenges::OtpChallenge;
use limits::Guarded;
pub use limits::lock_duration_ms;

use std::sync::Arc;

use auth_verifier::token::{AccessClaims, MACHINE_TOKEN_PREFIX, RevocationEntry, RevocationKind};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::crypto::{self, MasterKey};
use crate::domain::{
    ADMIN_ROLE, ApiToken, Device, Email, Invalid, Password, Scope, Session, Tenant, TenantSlug,
    User, now_ms,
};
use crate::store::audit::AuditEvent;
use crate::store::sessions::{NewSession, Revoking, Rotation};
use crate::store::users::NewUser;
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
    /// `INTERNAL`: anything else; details are logged, never sent.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Error::BadInput(invalid.0)
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

/// Who is calling, once their bearer token has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A signed-in user, by access token.
    User {
        /// User id.
        user_id: String,
        /// The session the token belongs to.
        session_id: String,
        /// Roles from the token.
        roles: Vec<String>,
    },
    /// A machine token.
    Machine {
        /// Token id.
        token_id: String,
        /// Its scopes.
        scopes: Vec<Scope>,
    },
}

impl Caller {
    /// Whether the caller may use the tenant's admin operations.
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::User { roles, .. } => roles.iter().any(|r| r == ADMIN_ROLE),
            Caller::Machine { scopes, .. } => scopes.contains(&Scope::Admin),
        }
    }

    /// Whether the caller is a machine token with `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        matches!(self, Caller::Machine { scopes, .. } if scopes.contains(&scope))
    }

    /// Whether the caller holds `scope`, and so may grant it: a user with the admin role
    /// holds its tenant's scopes (`admin`, `connections`, `verify`), a machine token exactly
    /// its own. `platform` is held only by platform tokens.
    pub fn holds(&self, scope: Scope) -> bool {
        match self {
            Caller::User { .. } => self.is_admin() && scope != Scope::Platform,
            Caller::Machine { scopes, .. } => scopes.contains(&scope),
        }
    }

    /// The actor recorded in the audit log.
    pub fn actor(&self) -> String {
        match self {
            Caller::User { user_id, .. } => format!("user:{user_id}"),
            Caller::Machine { token_id, .. } => format!("token:{token_id}"),
        }
    }
}

/// Tokens handed to a client, with the user and session they are for.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The tokens.
    pub tokens: TokenPair,
    /// The user.
    pub user: User,
    /// The session.
    pub session: Session,
}

/// An access token and the refresh token that renews it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenPair {
    /// JWT.
    pub access_token: String,
    /// Opaque, single use.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// A machine token just created: the only time its secret is shown.
#[derive(Debug, Clone)]
pub struct CreatedApiToken {
    /// The stored token.
    pub token: ApiToken,
    /// `mt_…`, shown once.
    pub secret: String,
}

/// What a reader of the machine endpoints (introspection, the revocation feed) may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// Every tenant: a `verify` token that holds `platform` too, or a tokenless loopback
    /// caller under `AUTH_INTERNAL_LOOPBACK_NO_TOKEN`.
    Everything,
    /// One tenant, by slug: a `verify` token of that tenant.
    Tenant(String),
}

impl Reader {
    /// Whether tokens of the tenant `slug` may be described to this reader.
    pub fn sees(&self, slug: &str) -> bool {
        match self {
            Reader::Everything => true,
            Reader::Tenant(own) => own == slug,
        }
    }

    /// Whether this feed entry is for this reader: its tenant's, or a signing key's (keys
    /// sign for every tenant).
    pub fn sees_entry(&self, entry: &RevocationEntry) -> bool {
        entry.kind == RevocationKind::Key || self.sees(&entry.tenant)
    }
}

/// The authentication service.
#[derive(Clone)]
pub struct Auth {
    store: Store,
    keys: KeyRing,
    feed: Feed,
    master: MasterKey,
    mailer: Mailer,
    config: Arc<Config>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// The service over its parts.
    pub fn new(
        store: Store,
        keys: KeyRing,
        feed: Feed,
        master: MasterKey,
        mailer: Mailer,
        config: Arc<Config>,
    ) -> Self {
        Self {
            store,
            keys,
            feed,
            master,
            mailer,
            config,
        }
    }

    /// The mailer.
    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The revocation feed.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The tenant named by `X-Tenant` (or `default`).
    pub async fn tenant(&self, slug: Option<&str>) -> Result<Tenant> {
        let slug = slug
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(TenantSlug::DEFAULT);
        let slug = TenantSlug::parse(slug).map_err(|_| Error::NotFound("tenant"))?;
        match self.store.tenant_by_slug(slug.as_str()).await {
            Err(StoreError::NotFound) => Err(Error::NotFound("tenant")),
            other => Ok(other?),
        }
    }

    // ----- who is calling -------------------------------------------------------------

    /// Check a bearer token presented to `tenant`: an access token of an active session of
    /// this tenant, or a machine token of this tenant (or with scope `platform`).
    pub async fn authenticate(&self, tenant: &Tenant, bearer: &str) -> Result<Caller> {
        if bearer.starts_with(MACHINE_TOKEN_PREFIX) {
            let token = self.machine_token(bearer).await?;
            if token.tenant_id != tenant.id && !token.scopes.contains(&Scope::Platform) {
                return Err(Error::Forbidden(
                    "this token belongs to another tenant".into(),
                ));
            }
            return Ok(Caller::Machine {
                token_id: token.id,
                scopes: token.scopes,
            });
        }
        let claims = self.verify_access_token(bearer).await?;
        if claims.tid != tenant.slug {
            return Err(Error::Forbidden(
                "this token belongs to another tenant".into(),
            ));
        }
        let session = match self.store.session(&tenant.id, &claims.sid).await {
            Err(StoreError::NotFound) => return Err(Error::Unauthenticated("session has ended")),
            other => other?,
        };
        let now = now_ms();
        if !session.is_active(now) || session.user_id != claims.sub {
            return Err(Error::Unauthenticated("session has ended"));
        }
        if now - session.last_seen_at > 60_000 {
            self.store.touch_session(&session.id, now).await?;
        }
        Ok(Caller::User {
            user_id: claims.sub,
            session_id: claims.sid,
            roles: claims.roles,
        })
    }

    /// The reader a machine token makes of the caller of `/introspect` and the revocation
    /// feed: `UNAUTHENTICATED` unless it is a machine token, `FORBIDDEN` without scope
    /// `verify`.
    pub async fn verify_reader(&self, bearer: &str) -> Result<Reader> {
        if !bearer.starts_with(MACHINE_TOKEN_PREFIX) {
            return Err(Error::Unauthenticated(
                "a machine token with scope verify is needed",
            ));
        }
        let token = self.machine_token(bearer).await?;
        if !token.scopes.contains(&Scope::Verify) {
            return Err(Error::Forbidden(
                "a token with scope verify is needed".into(),
            ));
        }
        if token.scopes.contains(&Scope::Platform) {
            return Ok(Reader::Everything);
        }
        let tenant = self.store.tenant_by_id(&token.tenant_id).await?;
        Ok(Reader::Tenant(tenant.slug))
    }

    /// The machine token with this secret; `UNAUTHENTICATED` when there is none.
    async fn machine_token(&self, secret: &str) -> Result<ApiToken> {
        match self
            .store
            .api_token_by_hash(&crypto::token_hash(secret))
            .await
        {
            Err(StoreError::NotFound) => Err(Error::Unauthenticated("machine token is invalid")),
            other => Ok(other?),
        }
    }

    /// Verify an access token's signature and claims (not its session), reloading the keys
    /// once if its key is unknown (another replica may have rotated).
    pub async fn verify_access_token(&self, token: &str) -> Result<AccessClaims> {
        match self.keys.verify(token) {
            Ok(claims) => Ok(claims),
            Err(_) => {
                self.keys.reload_if_stale().await;
                self.keys
                    .verify(token)
                    .map_err(|_| Error::Unauthenticated("access token is invalid or expired"))
            }
        }
    }

    // ----- sign-up, sign-in, refresh --------------------------------------------------

    /// Create an account with a password and sign it in. The address stays unverified (and
    /// so grants no configured role) until it is proven through our own mail; the first such
    /// proof removes this password and ends the sessions it started (see
    /// [`Auth::verify_otp`]), so whoever signs up with somebody else's address gains nothing
    /// once its owner shows up.
    pub async fn sign_up(
        &self,
        tenant: &Tenant,
        email: &str,
        password: &str,
        name: Option<&str>,
        origin: &Device,
    ) -> Result<Issued> {
        let email = Email::parse(email)?;
        self.check_lists(tenant, &email)?;
        let name = clean_name(name)?;
        let password = Password::new(
            password,
            &[email.as_str(), name.as_deref().unwrap_or_default()],
        )?;
        // Counted once the input is valid: what is limited is what costs a hash and answers
        // whether the address is taken.
        self.throttle(tenant, Guarded::SignUp, email.as_str(), origin)
            .await?;
        let hash = passwords::hash(&password).await?;
        let new = NewUser {
            email: &email,
            verified: false,
            password_hash: Some(hash),
            name_display: name,
            roles: vec![],
            configured_roles: vec![],
        };
        let user = match self.store.create_user(&tenant.id, new).await {
            Err(StoreError::Conflict(_)) => {
                return Err(Error::Conflict(
                    "an account with this email already exists".into(),
                ));
            }
            other => other?,
        };
        self.start_session(tenant, user, "password", "user.sign_up", origin, None)
            .await
    }

    /// Sign in with email and password. An unknown email and a wrong password answer
    /// alike, in time too: the attempt is counted (and a locked address refused) before the
    /// hash, whether or not the address has an account, and the audit row of a failure is
    /// written after answering.
    pub async fn sign_in(
        &self,
        tenant: &Tenant,
        email: &str,
        password: &str,
        origin: &Device,
    ) -> Result<Issued> {
        self.throttle(tenant, Guarded::SignIn, email, origin)
            .await?;
        let Ok(email) = Email::parse(email) else {
            // Still spend the hash, so malformed and unknown look the same from outside.
            passwords::verify(password, None).await?;
            metrics::counter!("auth_sign_ins_total", "method" => "password", "outcome" => "invalid_credentials").increment(1);
            return Err(Error::InvalidCredentials);
        };
        self.count_attempt(tenant, &email).await?;
        let owner = self.store.user_by_email(&tenant.id, &email).await?;
        let hash = owner.as_ref().and_then(|o| o.user.password_hash.as_deref());
        if !passwords::verify(password, hash).await? {
            metrics::counter!("auth_sign_ins_total", "method" => "password", "outcome" => "invalid_credentials").increment(1);
            if let Some(owner) = owner {
                let (auth, tenant, origin) = (self.clone(), tenant.clone(), origin.clone());
                tokio::spawn(async move {
                    auth.audit(
                        &tenant,
                        None,
                        "user.sign_in_failed",
                        &owner.user.id,
                        None,
                        &origin,
                    )
                    .await;
                });
            }
            return Err(Error::InvalidCredentials);
        }
        let owner = owner.expect("a verified password belongs to a user");
        let mut user = owner.user;
        self.sync_configured_roles(tenant, &email, owner.verified, &mut user)
            .await?;
        metrics::counter!("auth_sign_ins_total", "method" => "password", "outcome" => "success")
            .increment(1);
        self.start_session(
            tenant,
            user,
            "password",
            "user.sign_in",
            origin,
            Some(&email),
        )
        .await
    }

    /// Grant or take back the roles configuration gives (`AUTH_ADMIN_EMAILS` makes the
    /// addresses it lists admins of the default tenant): granted only when `email`, the
    /// address the user just signed in with, is listed and `verified`; taken back when it no
    /// longer is, if configuration granted it (a role given otherwise stays).
    async fn sync_configured_roles(
        &self,
        tenant: &Tenant,
        email: &Email,
        verified: bool,
        user: &mut User,
    ) -> Result<()> {
        let listed = verified && self.is_configured_admin(tenant, email);
        let holds = user.roles.iter().any(|r| r == ADMIN_ROLE);
        let configured = user.configured_roles.iter().any(|r| r == ADMIN_ROLE);
        if listed && !holds {
            user.roles.push(ADMIN_ROLE.to_owned());
            user.configured_roles.push(ADMIN_ROLE.to_owned());
        } else if !listed && configured {
            user.roles.retain(|r| r != ADMIN_ROLE);
            user.configured_roles.retain(|r| r != ADMIN_ROLE);
        } else {
            return Ok(());
        }
        self.store
            .set_roles(&tenant.id, &user.id, &user.roles, &user.configured_roles)
            .await?;
        Ok(())
    }

    /// Exchange a refresh token for a new pair. A used token presented again within the
    /// grace window gets the pair it was exchanged for; after that the session is revoked.
    pub async fn refresh(&self, tenant: &Tenant, refresh_token: &str) -> Result<Issued> {
        const INVALID: Error = Error::Unauthenticated("refresh token is invalid or expired");
        let hash = crypto::token_hash(refresh_token);
        let mut row = match self.store.refresh_token(&hash).await {
            Err(StoreError::NotFound) => return Err(INVALID),
            other => other?,
        };
        if row.tenant_id != tenant.id {
            return Err(Error::Forbidden(
                "this token belongs to another tenant".into(),
            ));
        }
        let session = self.store.session(&tenant.id, &row.session_id).await?;
        let now = now_ms();
        if !session.is_active(now) || row.expires_at <= now {
            return Err(INVALID);
        }
        let user = self.store.user_by_id(&tenant.id, &session.user_id).await?;
        if row.used_at.is_none() {
            let pair = self.mint_pair(tenant, &user, &session.id)?;
            let sealed = self.master.seal(
                &successor_context(&row.id),
                &serde_json::to_vec(&pair).map_err(anyhow::Error::from)?,
            );
            let rotation = self
                .store
                .rotate_refresh_token(
                    &tenant.id,
                    &session.id,
                    &row.id,
                    &crypto::token_hash(&pair.refresh_token),
                    session.expires_at,
                    &sealed,
                )
                .await?;
            match rotation {
                Rotation::Won => {
                    return Ok(Issued {
                        tokens: pair,
                        user,
                        session,
                    });
                }
                // Revoked since it was read above: no new pair.
                Rotation::SessionEnded => return Err(INVALID),
                // Another request exchanged it first: answer as a replay of that exchange.
                Rotation::Lost => row = self.store.refresh_token(&hash).await?,
            }
        }
        // 0 turns the grace off: a token presented a second time is reuse, even when both
        // presentations were in flight at once (a batch, two concurrent requests).
        let grace_ms = self.config.refresh_grace_seconds * 1000;
        let within_grace =
            grace_ms > 0 && row.used_at.is_some_and(|used| now_ms() - used <= grace_ms);
        if within_grace && let Some(sealed) = &row.successor {
            let pair: TokenPair = self
                .master
                .open(&successor_context(&row.id), sealed)
                .and_then(|plain| serde_json::from_slice(&plain).ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("sealed successor of a refresh token cannot be opened")
                })?;
            return Ok(Issued {
                tokens: pair,
                user,
                session,
            });
        }
        // Reuse of a spent token: whoever holds it may have stolen it. End the session.
        self.store
            .revoke_session(
                self.revoking(tenant, "refresh_reuse"),
                &user.id,
                &session.id,
            )
            .await?;
        self.feed.announce().await;
        self.store
            .audit(
                &tenant.id,
                AuditEvent {
                    action: "session.refresh_reuse",
                    actor: Some("system".into()),
                    user_id: Some(&user.id),
                    session_id: Some(&session.id),
                    ..Default::default()
                },
            )
            .await;
        tracing::warn!(session = %session.id, "refresh token reuse: session revoked");
        Err(INVALID)
    }

    /// Start a session for `user` with its first tokens; `forget_attempts_of` names the
    /// address whose counted sign-in attempts the same transaction forgets.
    async fn start_session(
        &self,
        tenant: &Tenant,
        user: User,
        method: &str,
        action: &str,
        origin: &Device,
        forget_attempts_of: Option<&Email>,
    ) -> Result<Issued> {
        let refresh_token = crypto::random_token(32);
        let session = self
            .store
            .create_session(NewSession {
                tenant_id: &tenant.id,
                user_id: &user.id,
                method,
                device: origin,
                lifetime_ms: self.config.session_ttl_seconds * 1000,
                refresh_hash: &crypto::token_hash(&refresh_token),
                action,
                forget_attempts_of: forget_attempts_of.map(Email::as_str),
            })
            .await?;
        let (access_token, expires_in) = self.mint_access(tenant, &user, &session.id)?;
        Ok(Issued {
            tokens: TokenPair {
                access_token,
                refresh_token,
                expires_in,
            },
            user,
            session,
        })
    }

    fn mint_pair(&self, tenant: &Tenant, user: &User, session_id: &str) -> Result<TokenPair> {
        let (access_token, expires_in) = self.mint_access(tenant, user, session_id)?;
        Ok(TokenPair {
            access_token,
            refresh_token: crypto::random_token(32),
            expires_in,
        })
    }

    fn mint_access(&self, tenant: &Tenant, user: &User, session_id: &str) -> Result<(String, i64)> {
        let now = now_ms() / 1000;
        // Tokens issued after a cut-off must sort after it, even within the same second.
        let iat = now.max(user.tokens_valid_after + 1);
        let ttl = self.config.access_ttl_seconds;
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience().to_owned(),
            sub: user.id.clone(),
            tid: tenant.slug.clone(),
            sid: session_id.to_owned(),
            roles: user.roles.clone(),
            iat,
            exp: iat + ttl,
            jti: crate::domain::new_id(),
        };
        Ok((self.keys.sign(&claims)?, ttl))
    }

    /// The roles configuration grants a new account whose address `email` is proven.
    fn configured_roles(&self, tenant: &Tenant, email: &Email) -> Vec<String> {
        if self.is_configured_admin(tenant, email) {
            vec![ADMIN_ROLE.to_owned()]
        } else {
            vec![]
        }
    }

    fn is_configured_admin(&self, tenant: &Tenant, email: &Email) -> bool {
        tenant.slug == TenantSlug::DEFAULT
            && self
                .config
                .admin_emails
                .iter()
                .any(|admin| admin.trim().eq_ignore_ascii_case(email.as_str()))
    }

    // ----- sessions ---------------------------------------------------------------------

    /// The caller's user.
    pub async fn me(&self, tenant: &Tenant, caller: &Caller) -> Result<User> {
        let user_id = user_of(caller)?;
        Ok(self.store.user_by_id(&tenant.id, user_id).await?)
    }

    /// The caller's active sessions, newest first.
    pub async fn sessions(&self, tenant: &Tenant, caller: &Caller) -> Result<Vec<Session>> {
        Ok(self
            .store
            .active_sessions(&tenant.id, user_of(caller)?)
            .await?)
    }

    /// One of the caller's sessions (revoked ones too); `None` for another user's.
    pub async fn session(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<Session>> {
        let user_id = user_of(caller)?;
        match self.store.session(&tenant.id, id).await {
            Ok(session) if session.user_id == user_id => Ok(Some(session)),
            Ok(_) | Err(StoreError::NotFound) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Revoke one of the caller's sessions.
    pub async fn revoke_session(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        id: &str,
        origin: &Device,
    ) -> Result<()> {
        let user_id = user_of(caller)?;
        if !self
            .store
            .revoke_session(self.revoking(tenant, "revoked"), user_id, id)
            .await?
        {
            return Err(Error::NotFound("session"));
        }
        self.feed.announce().await;
        self.audit(
            tenant,
            Some(caller),
            "session.revoked",
            user_id,
            Some(id),
            origin,
        )
        .await;
        Ok(())
    }

    /// End the caller's own session.
    pub async fn sign_out(&self, tenant: &Tenant, caller: &Caller, origin: &Device) -> Result<()> {
        let Caller::User { session_id, .. } = caller else {
            return Err(Error::Forbidden(
                "only a signed-in user can sign out".into(),
            ));
        };
        self.revoke_session(tenant, caller, &session_id.clone(), origin)
            .await
    }

    /// Revoke every session of the caller, theirs included; returns how many there were.
    pub async fn revoke_all_sessions(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        origin: &Device,
    ) -> Result<u64> {
        let user_id = user_of(caller)?.to_owned();
        let count = self.revoke_user(tenant, &user_id, "revoked_all").await?;
        self.audit(
            tenant,
            Some(caller),
            "session.revoked_all",
            &user_id,
            None,
            origin,
        )
        .await;
        Ok(count)
    }

    /// Revoke every session and access token of a user: a user cut-off and a session entry
    /// per session ended, written with the revocation in one transaction.
    pub async fn revoke_user(&self, tenant: &Tenant, user_id: &str, reason: &str) -> Result<u64> {
        let count = self
            .store
            .revoke_user_sessions(self.revoking(tenant, reason), user_id)
            .await?;
        self.feed.announce().await;
        Ok(count)
    }

    /// How a revocation in `tenant` is written: its reason and the horizon of its entries.
    fn revoking<'a>(&self, tenant: &'a Tenant, reason: &'a str) -> Revoking<'a> {
        Revoking {
            tenant,
            reason,
            horizon: self.revocation_horizon(),
        }
    }

    /// When every access token issued until now has expired (seconds), plus leeway.
    fn revocation_horizon(&self) -> i64 {
        now_ms() / 1000 + self.config.access_ttl_seconds + 120
    }

    // ----- machine tokens ---------------------------------------------------------------

    /// Create a machine token in the tenant; its secret is returned once. `granted_by` is
    /// the caller, who can grant only scopes it holds ([`Caller::holds`]); `None` is the
    /// operator on the command line, who may grant any.
    pub async fn create_api_token(
        &self,
        tenant: &Tenant,
        granted_by: Option<&Caller>,
        name: &str,
        scopes: &[Scope],
    ) -> Result<CreatedApiToken> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::BadInput("name must have 1 to 100 characters".into()));
        }
        if scopes.is_empty() {
            return Err(Error::BadInput("at least one scope is needed".into()));
        }
        if let Some(caller) = granted_by {
            refuse_ungranted(caller, scopes, "grant")?;
        }
        let mut scopes = scopes.to_vec();
        scopes.sort_by_key(|s| s.as_str());
        scopes.dedup();
        let secret = format!("{MACHINE_TOKEN_PREFIX}{}", crypto::random_token(32));
        let token = self
            .store
            .create_api_token(&tenant.id, name, &scopes, &crypto::token_hash(&secret))
            .await?;
        Ok(CreatedApiToken { token, secret })
    }

    /// Delete a machine token; verifiers drop it at once. The caller must hold every scope of
    /// the token (a tenant admin cannot withdraw the platform's tokens).
    pub async fn delete_api_token(&self, tenant: &Tenant, caller: &Caller, id: &str) -> Result<()> {
        let tokens = self.store.api_tokens(&tenant.id).await?;
        let token = tokens
            .iter()
            .find(|t| t.id == id)
            .ok_or(Error::NotFound("api token"))?;
        refuse_ungranted(caller, &token.scopes, "delete a token with")?;
        // Verifiers cache a machine token's introspection for at most an hour.
        let horizon = now_ms() / 1000 + 3600;
        match self.store.delete_api_token(tenant, id, horizon).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("api token")),
            other => other?,
        }
        self.feed.announce().await;
        Ok(())
    }

    // ----- signing keys -------------------------------------------------------------------

    /// Withdraw a signing key at once (operator, `auth-api keys revoke`): it stops signing
    /// and is no longer published, and a `key` entry on the revocation feed makes verifiers
    /// and every API replica (whose feed poller reloads the keys) refuse what it signed. Returns the replacement's kid when the
    /// current key was withdrawn.
    pub async fn withdraw_signing_key(&self, kid: &str) -> anyhow::Result<Option<String>> {
        let horizon = self.revocation_horizon();
        let replacement = KeyRing::withdraw(&self.store, &self.master, kid, horizon).await?;
        self.feed.announce().await;
        Ok(replacement)
    }

    // ----- tenants ------------------------------------------------------------------------

    /// Create a tenant.
    pub async fn create_tenant(&self, slug: &str, name: &str) -> Result<Tenant> {
        let slug = TenantSlug::parse(slug.trim())?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::BadInput("name must have 1 to 100 characters".into()));
        }
        match self.store.create_tenant(&slug, name).await {
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(format!(
                "tenant {} already exists",
                slug.as_str()
            ))),
            other => Ok(other?),
        }
    }

    /// Delete a tenant with everything it owns; its tokens are refused at once.
    pub async fn delete_tenant(&self, slug: &str) -> Result<()> {
        if slug == TenantSlug::DEFAULT {
            return Err(Error::Forbidden(
                "the default tenant cannot be deleted".into(),
            ));
        }
        let tenant = self.tenant(Some(slug)).await?;
        // Machine tokens are cached by verifiers for up to an hour, access tokens live for
        // their TTL: keep the cut-off for the longer of the two.
        let horizon = self.revocation_horizon().max(now_ms() / 1000 + 3600);
        match self.store.delete_tenant(&tenant, horizon).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("tenant")),
            other => other?,
        }
        self.feed.announce().await;
        Ok(())
    }

    // ----- audit ----------------------------------------------------------------------------

    /// Record an event about `user_id`, done by the user themself, with `detail`.
    async fn audit_detail(
        &self,
        tenant: &Tenant,
        action: &str,
        user_id: &str,
        origin: &Device,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            action,
            actor: Some(format!("user:{user_id}")),
            user_id: Some(user_id),
            session_id: None,
            ip: origin.ip.as_deref(),
            detail,
        };
        self.store.audit(&tenant.id, event).await;
    }

    /// Record an event about `user_id`, done by `actor` (the user themself when `None`).
    async fn audit(
        &self,
        tenant: &Tenant,
        actor: Option<&Caller>,
        action: &str,
        user_id: &str,
        session_id: Option<&str>,
        origin: &Device,
    ) {
        let event = AuditEvent {
            action,
            actor: Some(actor.map_or_else(|| format!("user:{user_id}"), Caller::actor)),
            user_id: Some(user_id),
            session_id,
            ip: origin.ip.as_deref(),
            detail: serde_json::json!({}),
        };
        self.store.audit(&tenant.id, event).await;
    }
}

/// `FORBIDDEN` naming the first of `scopes` the caller does not hold.
fn refuse_ungranted(caller: &Caller, scopes: &[Scope], what: &str) -> Result<()> {
    match scopes.iter().find(|scope| !caller.holds(**scope)) {
        None => Ok(()),
        Some(scope) => Err(Error::Forbidden(format!(
            "you can {what} only scopes you hold yourself; you do not hold {}",
            scope.as_str()
        ))),
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

fn successor_context(refresh_id: &str) -> String {
    format!("refresh_tokens:{refresh_id}")
}

fn clean_name(name: Option<&str>) -> Result<Option<String>> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::BadInput(
            "name must have at most 100 printable characters".into(),
        ));
    }
    Ok(Some(name.to_owned()))
}
