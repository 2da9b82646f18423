//! Second factors: the second step of every sign-in, TOTP enrolment, recovery codes, the
//! tenant policy, and an admin's reset.
//!
//! The second step: every sign-in ends in [`Auth::start_session_with`], which asks
//! [`Auth::second_step`] before anything else is written. When the user has a factor (a
//! confirmed authenticator app, or a passkey), or the tenant's `account.mfa` policy demands
//! one they lack, the sign-in is stored sealed behind a random mfaToken (single use, five
//! minutes by default, five attempts) and the answer is `MFA_REQUIRED`; no session exists.
//! Otherwise it answers a [`Cleared`], the value [`Auth::open_session`] needs: only this
//! module makes them, so no path can open a session without passing here.
//! [`Auth::verify_mfa`] finishes a stored sign-in once a factor proves right; a sign-in the
//! policy holds for enrolment is finished by [`Auth::confirm_totp_enrollment`] with its
//! mfaToken instead.
//!
//! Attempts are counted three ways, each before the answer is compared: per mfaToken (five,
//! the fifth wrong one ends it: `RATE_LIMITED`), by the rate limiter (per IP and per user),
//! and by the sign-in lockout under a key of the user's own, so five wrong codes in a row
//! over any number of mfaTokens lock the user's second step (30 s, doubling).
//!
//! Recovery codes are 60-bit random strings stored as HMAC-SHA256 under a key derived from
//! the master key: a slow password hash adds nothing against guessing 2^60 values, and the
//! keyed hash lets one indexed conditional UPDATE find and spend a code, so a code is
//! accepted once even when presented twice at the same moment. A stolen database alone does
//! not let anyone test candidate codes at all.

mod totp;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::limits::Guarded;
use super::mail::Template;
use super::passwords;
use super::tokens::OAuthSignIn;
use super::{Auth, Caller, Device, Error, Issued, Result, user_of};
use crate::crypto;
use crate::domain::{
    AuditAction, Composed, Email, EmailState, SignInMethod, Tenant, User, new_id, now_ms,
};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;
use crate::store::connections::ConnectionWrite;
use crate::store::mfa::{FactorCounts, MfaChallenge, MfaPurpose, NewMfaChallenge, TotpRow};

/// Attempts one mfaToken allows; the last wrong one ends it.
const MAX_ATTEMPTS: i64 = 5;

const MFA_GONE: Error =
    Error::Unauthenticated("the mfaToken is invalid, expired or used; sign in again");
const CODE_WRONG: Error = Error::WrongSecret("the code is wrong");

/// Proof that a sign-in may open its session: no second factor was due, or one proved
/// right. Only this module makes one (its field is private), and [`Auth::open_session`]
/// takes one, so a session cannot start around the second step.
#[derive(Debug)]
pub(super) struct Cleared {
    factor: Option<&'static str>,
}

impl Cleared {
    /// For the passwordless passkey sign-in (`finishPasskeySignIn`) alone, once webauthn-rs
    /// verified an assertion with user verification: the passkey is both factors.
    pub(super) fn by_passkey_sign_in() -> Self {
        Self {
            factor: Some("passkey"),
        }
    }

    /// The second factor that proved right, if one was asked for.
    pub(super) fn factor(&self) -> Option<&'static str> {
        self.factor
    }
}

/// A sign-in whose first factor proved right, as [`Auth::start_session_with`] has it.
pub(super) struct PendingSignIn<'a> {
    pub(super) method: SignInMethod,
    pub(super) action: AuditAction,
    pub(super) forget_attempts_of: Option<&'a Email>,
    pub(super) oauth: Option<&'a OAuthSignIn<'a>>,
    /// The user's factors when the sign-in already read them (a password sign-in reads
    /// them with the user); else the second step reads them.
    pub(super) factors: Option<MfaStatus>,
}

/// A pending sign-in as stored (sealed) behind an mfaToken: everything its session needs.
#[derive(Serialize, Deserialize)]
struct StoredSignIn {
    method: String,
    action: String,
    forget_attempts_of: Option<String>,
    provider: Option<String>,
    connection: Option<ConnectionWrite>,
}

/// `MFA_REQUIRED`'s extensions.
#[derive(Clone)]
pub struct MfaRequired {
    /// Opaque, single use; for `verifyMfa` (or, with `methods == ["enroll"]`, for
    /// `startTotpEnrollment` and `confirmTotpEnrollment`). Not a bearer token.
    pub mfa_token: String,
    /// What may follow: `totp`, `passkey`, `recovery`; or `enroll` alone.
    pub methods: Vec<String>,
    /// Seconds the mfaToken lives.
    pub expires_in: i64,
    /// WebAuthn request options when `passkey` is offered.
    pub passkey_options: Option<serde_json::Value>,
}

impl std::fmt::Debug for MfaRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaRequired")
            .field("mfa_token", &"…")
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

/// The second factor `verifyMfa` was given.
#[derive(Debug, Clone, Copy)]
pub enum Factor<'a> {
    /// A code of the authenticator app.
    Totp(&'a str),
    /// A recovery code.
    Recovery(&'a str),
    /// A passkey assertion's JSON.
    Passkey(&'a serde_json::Value),
}

impl Factor<'_> {
    fn name(self) -> &'static str {
        match self {
            Self::Totp(_) => "totp",
            Self::Recovery(_) => "recovery",
            Self::Passkey(_) => "passkey",
        }
    }
}

/// Who enrols an authenticator app: a signed-in user, or a sign-in the tenant's policy holds
/// until it enrols (the mfaToken of an `MFA_REQUIRED` with methods `["enroll"]`).
#[derive(Debug, Clone, Copy)]
pub enum Enroller<'a> {
    /// The caller of a session.
    Session(&'a Caller),
    /// An mfaToken for enrolment.
    Pending(&'a str),
}

/// How `disableTotp` is confirmed.
#[derive(Debug, Clone, Copy)]
pub enum DisableProof<'a> {
    /// A current code.
    TotpCode(&'a str),
    /// The account's password.
    Password(&'a str),
}

/// `startTotpEnrollment`'s answer: shown once.
#[derive(Debug, Clone)]
pub struct TotpEnrollment {
    /// Base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/…`, what the QR code holds.
    pub otpauth_uri: String,
    /// The QR code, an SVG document.
    pub qr_code_svg: String,
}

/// New recovery codes (shown once), and the session an enrolment with an mfaToken finished.
#[derive(Debug, Clone)]
pub struct RecoveryCodes {
    /// The codes.
    pub codes: Vec<String>,
    /// The session, for `confirmTotpEnrollment` with an mfaToken.
    pub issued: Option<Issued>,
}

/// Which factors a user has on (never a secret).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MfaStatus {
    /// An authenticator app.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// Registered passkeys.
    pub passkeys: i64,
}

impl MfaStatus {
    /// Whether a sign-in asks for a second factor.
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }

    fn methods(&self) -> Vec<String> {
        let mut methods = Vec::new();
        if self.totp {
            methods.push("totp".to_owned());
        }
        if self.passkeys > 0 {
            methods.push("passkey".to_owned());
        }
        if self.recovery_codes_left > 0 {
            methods.push("recovery".to_owned());
        }
        methods
    }
}

fn challenge_context(id: &str) -> String {
    format!("mfa_challenges:{id}")
}

fn totp_context(id: &str) -> String {
    format!("mfa_totp:{id}")
}

fn recovery_context(user_id: &str) -> String {
    format!("mfa_recovery_codes:{user_id}")
}

fn now_seconds() -> u64 {
    (now_ms() / 1000).max(0) as u64
}

impl Auth {
    /// Which factors `user` has on.
    pub async fn mfa_status(&self, user: &User) -> Result<MfaStatus> {
        self.factors(&user.tenant_id, &user.id).await
    }

    async fn factors(&self, tenant_id: &str, user_id: &str) -> Result<MfaStatus> {
        // One statement: the app, the codes and the passkeys together.
        let counts = self.store.factor_counts(tenant_id, user_id).await?;
        Ok(self.factor_status(counts))
    }

    /// What the factors counted in the database amount to (passkeys count only while
    /// they are on).
    pub(super) fn factor_status(&self, counts: FactorCounts) -> MfaStatus {
        MfaStatus {
            totp: counts.totp,
            recovery_codes_left: counts.recovery_codes,
            passkeys: self.passkeys_counted(counts.passkeys),
        }
    }

    /// The second step of a sign-in whose first factor proved right: [`Cleared`] when none
    /// is due; else the sign-in is stored behind a new mfaToken and the answer is
    /// `MFA_REQUIRED`.
    pub(super) async fn second_step(
        &self,
        tenant: &Tenant,
        user: &User,
        pending: &PendingSignIn<'_>,
        origin: &Device,
    ) -> Result<Cleared> {
        let factors = match pending.factors {
            Some(factors) => factors,
            None => self.factors(&tenant.id, &user.id).await?,
        };
        let purpose = if factors.any() {
            MfaPurpose::Verify
        } else if tenant.settings.account.mfa.demands(&user.roles) {
            MfaPurpose::Enroll
        } else {
            return Ok(Cleared { factor: None });
        };
        let methods = match purpose {
            MfaPurpose::Verify => factors.methods(),
            MfaPurpose::Enroll => vec!["enroll".to_owned()],
        };
        let stored = StoredSignIn {
            method: pending.method.as_str().to_owned(),
            action: pending.action.as_str().to_owned(),
            forget_attempts_of: pending.forget_attempts_of.map(|e| e.as_str().to_owned()),
            provider: pending.oauth.map(|o| o.provider.to_owned()),
            connection: pending.oauth.and_then(|o| o.connection.cloned()),
        };
        let id = new_id();
        let token = crypto::random_token(32);
        let sealed = self.master.seal(
            &challenge_context(&id),
            &serde_json::to_vec(&stored).map_err(anyhow::Error::from)?,
        );
        let ttl = self.config.mfa_token_ttl_seconds;
        let now = now_ms();
        let audit = AuditEvent {
            action: AuditAction::MfaChallenged,
            actor: Some(Caller::user_actor(&user.id)),
            user_id: Some(&user.id),
            session_id: None,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: json!({ "method": pending.method.as_str(), "methods": methods }),
        };
        self.store
            .open_mfa_challenge(
                &tenant.id,
                &NewMfaChallenge {
                    id: &id,
                    user_id: &user.id,
                    token_hash: &crypto::token_hash(&token),
                    purpose,
                    pending: &sealed,
                    max_attempts: MAX_ATTEMPTS,
                    expires_at: now + ttl * 1000,
                },
                now,
                &audit,
            )
            .await?;
        let passkey_options = if purpose == MfaPurpose::Verify && factors.passkeys > 0 {
            self.passkey_factor_options(tenant, user, &id).await?
        } else {
            None
        };
        metrics::counter!("auth_mfa_challenges_total", "purpose" => match purpose {
            MfaPurpose::Verify => "verify",
            MfaPurpose::Enroll => "enroll",
        })
        .increment(1);
        Err(Error::MfaRequired(Box::new(MfaRequired {
            mfa_token: token,
            methods,
            expires_in: ttl,
            passkey_options,
        })))
    }

    /// Finish a sign-in waiting for its second factor: exactly one factor, checked against
    /// the user the mfaToken is for; the session it was waiting for starts.
    pub async fn verify_mfa(
        &self,
        tenant: &Tenant,
        mfa_token: &str,
        factor: Factor<'_>,
        origin: &Device,
    ) -> Result<Issued> {
        let challenge = self.attempt_challenge(tenant, mfa_token).await?;
        if challenge.purpose == MfaPurpose::Enroll {
            return Err(Error::BadInput(
                "this sign-in must enrol a second factor first: call startTotpEnrollment \
                 and confirmTotpEnrollment with the mfaToken"
                    .into(),
            ));
        }
        let user = self
            .store
            .user_by_id(&tenant.id, &challenge.user_id)
            .await?;
        // Disabled while the factor was awaited: refused before the factor is spent.
        let (_, method, _) = self.stored_sign_in(&challenge)?;
        self.refuse_disabled(tenant, &user, method, origin).await?;
        self.guard_factor_attempt(tenant, &user.id, origin).await?;
        let right = match factor {
            Factor::Totp(code) => self.spend_totp_code(tenant, &user.id, code).await?,
            Factor::Recovery(code) => {
                self.spend_recovery_code(tenant, &user, code, origin)
                    .await?
            }
            Factor::Passkey(credential) => {
                self.verify_passkey_factor(tenant, &user, &challenge.id, credential)
                    .await?
            }
        };
        if !right {
            return Err(self
                .factor_failed(tenant, &user.id, Some(&challenge), factor.name(), origin)
                .await?);
        }
        self.finish_pending(tenant, user, &challenge, factor.name(), origin)
            .await
    }

    /// Spend one attempt of the mfaToken; `UNAUTHENTICATED` when it is unknown (here),
    /// expired or used, `RATE_LIMITED` when its attempts are used up.
    async fn attempt_challenge(&self, tenant: &Tenant, mfa_token: &str) -> Result<MfaChallenge> {
        let hash = crypto::token_hash(mfa_token.trim());
        match self
            .store
            .attempt_mfa_challenge(&tenant.id, &hash, now_ms())
            .await
        {
            Err(StoreError::NotFound) => Err(self.why_gone(tenant, &hash).await?),
            other => Ok(other?),
        }
    }

    async fn why_gone(&self, tenant: &Tenant, hash: &str) -> Result<Error> {
        match self
            .store
            .exhausted_mfa_challenge(&tenant.id, hash, now_ms())
            .await?
        {
            Some(user_id) => Ok(Error::RateLimited {
                retry_after: self.factor_lock_seconds(tenant, &user_id).await?,
            }),
            None => Ok(MFA_GONE),
        }
    }

    /// The rate limits and the lockout of a second-factor attempt by `user_id`.
    async fn guard_factor_attempt(
        &self,
        tenant: &Tenant,
        user_id: &str,
        origin: &Device,
    ) -> Result<()> {
        self.throttle(
            tenant,
            Guarded::VerifyMfa,
            &format!("user:{user_id}"),
            origin,
        )
        .await?;
        self.count_factor_attempt(tenant, user_id).await
    }

    /// A wrong factor: recorded; `RATE_LIMITED` when it used up the mfaToken, else
    /// `INVALID_CREDENTIALS`.
    async fn factor_failed(
        &self,
        tenant: &Tenant,
        user_id: &str,
        challenge: Option<&MfaChallenge>,
        factor: &str,
        origin: &Device,
    ) -> Result<Error> {
        let left = challenge.map(|c| (c.max_attempts - c.attempts).max(0));
        self.audit_detail(
            tenant,
            AuditAction::MfaFailed,
            user_id,
            origin,
            json!({ "factor": factor, "attemptsLeft": left }),
        )
        .await;
        metrics::counter!("auth_mfa_verifications_total", "outcome" => "wrong").increment(1);
        if left == Some(0) {
            return Ok(Error::RateLimited {
                retry_after: self.factor_lock_seconds(tenant, user_id).await?,
            });
        }
        Ok(CODE_WRONG)
    }

    /// A right factor: the mfaToken spent, the lockout's count forgotten, and the stored
    /// sign-in's session opened.
    async fn finish_pending(
        &self,
        tenant: &Tenant,
        user: User,
        challenge: &MfaChallenge,
        factor: &'static str,
        origin: &Device,
    ) -> Result<Issued> {
        if !self
            .store
            .close_mfa_challenge(&challenge.id, now_ms())
            .await?
        {
            return Err(MFA_GONE);
        }
        self.forget_factor_attempts(tenant, &user.id).await?;
        metrics::counter!("auth_mfa_verifications_total", "outcome" => "success").increment(1);
        let (stored, method, action) = self.stored_sign_in(challenge)?;
        self.audit_detail(
            tenant,
            AuditAction::MfaVerified,
            &user.id,
            origin,
            json!({ "factor": factor, "method": method.as_str() }),
        )
        .await;
        // The account may have been disabled while the factor was awaited.
        self.refuse_disabled(tenant, &user, method, origin).await?;
        let forget = stored
            .forget_attempts_of
            .as_deref()
            .and_then(|e| Email::parse(e).ok());
        let oauth = stored.provider.as_deref().map(|provider| OAuthSignIn {
            provider,
            connection: stored.connection.as_ref(),
        });
        let cleared = Cleared {
            factor: Some(factor),
        };
        match self
            .open_session(
                tenant,
                user,
                method,
                action,
                origin,
                forget.as_ref(),
                oauth,
                cleared,
            )
            .await
        {
            Err(Error::Conflict(_)) if stored.provider.is_some() => Err(Error::Conflict(
                "this provider account is connected to another user".into(),
            )),
            other => other,
        }
    }

    /// The sign-in a pending one will start, opened.
    fn stored_sign_in(
        &self,
        challenge: &MfaChallenge,
    ) -> Result<(StoredSignIn, SignInMethod, AuditAction)> {
        let stored: StoredSignIn = self
            .master
            .open(&challenge_context(&challenge.id), &challenge.pending)
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .ok_or_else(|| anyhow::anyhow!("a pending sign-in cannot be opened"))?;
        let method = SignInMethod::parse(&stored.method)
            .ok_or_else(|| anyhow::anyhow!("a pending sign-in names an unknown method"))?;
        let action = AuditAction::parse(&stored.action)
            .ok_or_else(|| anyhow::anyhow!("a pending sign-in names an unknown action"))?;
        Ok((stored, method, action))
    }

    /// Whether `code` is a current code of the user's confirmed authenticator app not
    /// accepted before (it is accepted now, once).
    async fn spend_totp_code(&self, tenant: &Tenant, user_id: &str, code: &str) -> Result<bool> {
        let Some(row) = self
            .store
            .totp(&tenant.id, user_id)
            .await?
            .filter(|row| row.confirmed_at.is_some())
        else {
            return Ok(false);
        };
        let secret = self.open_totp_secret(&row)?;
        let Some(step) = totp::matched_step(&secret, code, now_seconds()) else {
            return Ok(false);
        };
        // The one check of "not accepted before" is the conditional UPDATE, so requests
        // racing with one code cannot both pass a check made on what they read.
        Ok(self
            .store
            .spend_totp_step(&tenant.id, user_id, step)
            .await?)
    }

    fn open_totp_secret(&self, row: &TotpRow) -> Result<Vec<u8>> {
        Ok(self
            .master
            .open(&totp_context(&row.id), &row.secret)
            .ok_or_else(|| anyhow::anyhow!("a sealed TOTP secret cannot be opened"))?)
    }

    fn recovery_hash(&self, user_id: &str, code: &str) -> String {
        self.master
            .keyed_hash(&recovery_context(user_id), &totp::normalise_recovery(code))
    }

    /// Spend one of the user's recovery codes: whether `code` was one, unused.
    async fn spend_recovery_code(
        &self,
        tenant: &Tenant,
        user: &User,
        code: &str,
        origin: &Device,
    ) -> Result<bool> {
        let hash = self.recovery_hash(&user.id, code);
        if !self
            .store
            .spend_recovery_code(&tenant.id, &user.id, &hash, now_ms())
            .await?
        {
            return Ok(false);
        }
        let left = self
            .store
            .factor_counts(&tenant.id, &user.id)
            .await?
            .recovery_codes;
        self.audit_detail(
            tenant,
            AuditAction::MfaRecoveryCodeUsed,
            &user.id,
            origin,
            json!({ "left": left }),
        )
        .await;
        Ok(true)
    }

    /// The user of an enrolment: the caller, or the user of an mfaToken for enrolment
    /// (spending one of its attempts when `attempt`); with the stored sign-in in that case.
    async fn enroller(
        &self,
        tenant: &Tenant,
        who: Enroller<'_>,
        attempt: bool,
    ) -> Result<(User, Option<MfaChallenge>)> {
        let (user_id, challenge) = match who {
            Enroller::Session(caller) => (user_of(caller)?.to_owned(), None),
            Enroller::Pending(token) => {
                let challenge = if attempt {
                    self.attempt_challenge(tenant, token).await?
                } else {
                    let hash = crypto::token_hash(token.trim());
                    match self
                        .store
                        .open_mfa_challenge_by_token(&tenant.id, &hash, now_ms())
                        .await
                    {
                        Err(StoreError::NotFound) => {
                            return Err(self.why_gone(tenant, &hash).await?);
                        }
                        other => other?,
                    }
                };
                if challenge.purpose != MfaPurpose::Enroll {
                    return Err(Error::BadInput(
                        "this mfaToken is for verifyMfa: the account has a second factor".into(),
                    ));
                }
                (challenge.user_id.clone(), Some(challenge))
            }
        };
        let user = self.store.user_by_id(&tenant.id, &user_id).await?;
        Ok((user, challenge))
    }

    /// Start enrolling an authenticator app: a new secret (replacing an unconfirmed one),
    /// sealed at rest; nothing is switched on until [`Auth::confirm_totp_enrollment`].
    /// `CONFLICT` when an app is on already.
    pub async fn start_totp_enrollment(
        &self,
        tenant: &Tenant,
        who: Enroller<'_>,
        origin: &Device,
    ) -> Result<TotpEnrollment> {
        let (user, _) = self.enroller(tenant, who, false).await?;
        self.throttle(tenant, Guarded::TotpEnrollment, &user.id, origin)
            .await?;
        let account = self
            .primary_email(&user)
            .await?
            .map_or_else(|| user.id.clone(), |e| e.as_str().to_owned());
        let issuer = tenant
            .settings
            .branding
            .product_name
            .clone()
            .unwrap_or_else(|| tenant.name.clone());
        let (secret, base32) = totp::new_secret();
        let uri = totp::labelled(&secret, &issuer, &account)?
            .to_url()
            .map_err(|error| anyhow::anyhow!("otpauth URI not built: {error:?}"))?;
        let qr_code_svg = totp::qr_svg(&uri)?;
        let id = new_id();
        let sealed = self.master.seal(&totp_context(&id), &secret);
        let audit = AuditEvent {
            detail: json!({}),
            ..self.event(
                AuditAction::MfaTotpEnrollmentStarted,
                None,
                &user.id,
                None,
                origin,
            )
        };
        match self
            .store
            .put_pending_totp(&tenant.id, &user.id, &id, &sealed, now_ms(), &audit)
            .await
        {
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(
                "an authenticator app is on already; disable it before enrolling another".into(),
            )),
            other => other.map_err(Error::from),
        }?;
        Ok(TotpEnrollment {
            secret: base32,
            otpauth_uri: uri,
            qr_code_svg,
        })
    }

    /// Switch the enrolled authenticator app on with its first code, and hand out ten new
    /// recovery codes (shown once). The caller's session goes on; an enrolment with an
    /// mfaToken finishes its sign-in and answers the session too.
    pub async fn confirm_totp_enrollment(
        &self,
        tenant: &Tenant,
        who: Enroller<'_>,
        code: &str,
        origin: &Device,
    ) -> Result<RecoveryCodes> {
        let (user, challenge) = self.enroller(tenant, who, true).await?;
        self.guard_factor_attempt(tenant, &user.id, origin).await?;
        let Some(row) = self
            .store
            .totp(&tenant.id, &user.id)
            .await?
            .filter(|row| row.confirmed_at.is_none())
        else {
            return Err(Error::BadInput(
                "no enrolment is waiting for its first code: call startTotpEnrollment first".into(),
            ));
        };
        let secret = self.open_totp_secret(&row)?;
        let step = totp::matched_step(&secret, code, now_seconds()).filter(|s| *s > row.last_step);
        let Some(step) = step else {
            return Err(self
                .factor_failed(tenant, &user.id, challenge.as_ref(), "totp", origin)
                .await?);
        };
        let codes = totp::recovery_codes();
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| self.recovery_hash(&user.id, c))
            .collect();
        let mail = self
            .factor_notice(
                tenant,
                &user,
                Template::MfaFactorAdded,
                "An authenticator app",
                false,
            )
            .await?;
        let audit = AuditEvent {
            detail: json!({ "recoveryCodes": codes.len() }),
            ..self.event(AuditAction::MfaTotpEnabled, None, &user.id, None, origin)
        };
        if !self
            .store
            .confirm_totp(
                &tenant.id,
                &user.id,
                &row.id,
                step,
                &hashes,
                now_ms(),
                &audit,
                mail.as_ref(),
            )
            .await?
        {
            return Err(Error::Conflict(
                "this enrolment was confirmed or replaced meanwhile".into(),
            ));
        }
        if mail.is_some() {
            self.mailer.wake();
        }
        self.forget_factor_attempts(tenant, &user.id).await?;
        let issued = match challenge {
            Some(challenge) => Some(
                self.finish_pending(tenant, user, &challenge, "totp", origin)
                    .await?,
            ),
            None => None,
        };
        Ok(RecoveryCodes { codes, issued })
    }

    /// Switch the caller's authenticator app off, confirmed by a current code or the
    /// password. Recovery codes go with it unless a passkey remains. `FORBIDDEN` when the
    /// tenant's policy demands a factor and none would remain.
    pub async fn disable_totp(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        proof: DisableProof<'_>,
        origin: &Device,
    ) -> Result<()> {
        let user_id = user_of(caller)?;
        let user = self.store.user_by_id(&tenant.id, user_id).await?;
        let on = self
            .store
            .totp(&tenant.id, user_id)
            .await?
            .is_some_and(|row| row.confirmed_at.is_some());
        if !on {
            return Err(Error::NotFound("authenticator app"));
        }
        self.guard_factor_attempt(tenant, user_id, origin).await?;
        let (right, factor) = match proof {
            DisableProof::TotpCode(code) => {
                (self.spend_totp_code(tenant, user_id, code).await?, "totp")
            }
            DisableProof::Password(password) => (
                passwords::verify(password, user.password_hash.as_deref()).await?,
                "password",
            ),
        };
        if !right {
            self.factor_failed(tenant, user_id, None, factor, origin)
                .await?;
            return Err(Error::WrongSecret("the code or password is wrong"));
        }
        self.forget_factor_attempts(tenant, user_id).await?;
        let factors = self.factors(&tenant.id, user_id).await?;
        if factors.passkeys == 0 && tenant.settings.account.mfa.demands(&user.roles) {
            return Err(Error::Forbidden(
                "this tenant requires a second factor: add another one (a passkey) before \
                 switching the authenticator app off"
                    .into(),
            ));
        }
        let mail = self
            .factor_notice(
                tenant,
                &user,
                Template::MfaFactorRemoved,
                "An authenticator app",
                false,
            )
            .await?;
        let audit = AuditEvent {
            detail: json!({ "confirmedWith": factor, "recoveryCodesRemoved": factors.passkeys == 0 }),
            ..self.event(
                AuditAction::MfaTotpDisabled,
                Some(caller),
                user_id,
                session_of(caller),
                origin,
            )
        };
        if !self
            .store
            .delete_totp(
                &tenant.id,
                user_id,
                factors.passkeys == 0,
                &audit,
                mail.as_ref(),
            )
            .await?
        {
            return Err(Error::NotFound("authenticator app"));
        }
        if mail.is_some() {
            self.mailer.wake();
        }
        Ok(())
    }

    /// Replace the caller's recovery codes by ten new ones (shown once), confirmed by a
    /// current code of their authenticator app.
    pub async fn regenerate_recovery_codes(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        totp_code: &str,
        origin: &Device,
    ) -> Result<Vec<String>> {
        let user_id = user_of(caller)?;
        let on = self
            .store
            .totp(&tenant.id, user_id)
            .await?
            .is_some_and(|row| row.confirmed_at.is_some());
        if !on {
            return Err(Error::BadInput(
                "recovery codes back an authenticator app: switch one on first".into(),
            ));
        }
        self.guard_factor_attempt(tenant, user_id, origin).await?;
        if !self.spend_totp_code(tenant, user_id, totp_code).await? {
            return Err(self
                .factor_failed(tenant, user_id, None, "totp", origin)
                .await?);
        }
        self.forget_factor_attempts(tenant, user_id).await?;
        let codes = totp::recovery_codes();
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| self.recovery_hash(user_id, c))
            .collect();
        let audit = AuditEvent {
            detail: json!({ "recoveryCodes": codes.len() }),
            ..self.event(
                AuditAction::MfaRecoveryCodesRegenerated,
                Some(caller),
                user_id,
                session_of(caller),
                origin,
            )
        };
        self.store
            .replace_recovery_codes(&tenant.id, user_id, &hashes, now_ms(), &audit)
            .await?;
        Ok(codes)
    }

    /// Remove every second factor of a user of the tenant (admin): authenticator app,
    /// recovery codes, passkeys, and the sign-ins waiting for one. Sessions go on; the next
    /// sign-in asks for no factor (or for an enrolment, when the policy demands one). Whether
    /// anything was removed.
    pub async fn admin_reset_mfa(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        user_id: &str,
        origin: &Device,
    ) -> Result<bool> {
        if !caller.is_admin() {
            return Err(Error::Forbidden("this operation needs an admin".into()));
        }
        let user = match self.store.user_by_id(&tenant.id, user_id).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("user")),
            other => other?,
        };
        let passkeys = self.remove_passkeys_for_reset(tenant, &user.id).await?;
        let mail = self
            .factor_notice(
                tenant,
                &user,
                Template::MfaFactorRemoved,
                "Every second factor (authenticator app, recovery codes and passkeys)",
                true,
            )
            .await?;
        let audit = AuditEvent {
            detail: json!({ "passkeys": passkeys }),
            ..self.event(
                AuditAction::AdminMfaReset,
                Some(caller),
                &user.id,
                None,
                origin,
            )
        };
        let removed = self
            .store
            .reset_mfa(
                &tenant.id,
                &user.id,
                now_ms(),
                passkeys > 0,
                &audit,
                mail.as_ref(),
            )
            .await?;
        if removed && mail.is_some() {
            self.mailer.wake();
        }
        Ok(removed)
    }

    /// The notice to the user's primary address that a factor was added or removed, for the
    /// transaction of the change; `None` for an account without an address.
    pub(super) async fn factor_notice(
        &self,
        tenant: &Tenant,
        user: &User,
        template: Template,
        factor: &str,
        by_admin: bool,
    ) -> Result<Option<Composed>> {
        let Some(email) = self.primary_email(user).await? else {
            return Ok(None);
        };
        Ok(Some(self.mailer.compose(
            tenant,
            &email,
            template,
            json!({ "factor": factor, "by_admin": by_admin, "email": email.as_str() }),
        )?))
    }

    async fn primary_email(&self, user: &User) -> Result<Option<Email>> {
        let emails = self.store.user_emails(&user.tenant_id, &user.id).await?;
        Ok(emails
            .into_iter()
            .find(|e| e.is_primary && e.state == EmailState::Active)
            .and_then(|e| Email::parse(&e.email).ok()))
    }
}

fn session_of(caller: &Caller) -> Option<&str> {
    match caller {
        Caller::User { session_id, .. } => Some(session_id),
        Caller::Machine { .. } => None,
    }
}
