//! Secrets sent by mail: passwordless sign-in codes (`requestOtp` / `verifyOtp`, creating
//! the account on first use) and password resets.

use serde_json::json;

use super::limits::Guarded;
use super::mail::Template;
use super::{Auth, Caller, Device, Error, Issued, Result};
use crate::crypto;
use crate::domain::User;
use crate::domain::{
    AuditAction, Email, Millis, Password, RevokeReason, SignInMethod, Tenant, new_id, now_ms,
};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;
use crate::store::challenges::{ChallengeKind, NewChallenge};
use crate::store::users::NewUser;

/// Lifetime of a password-reset secret.
const RESET_TTL_MS: i64 = 3_600_000;

/// A sign-in code on its way: what `requestOtp` answers, the same whether or not the
/// address has an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpChallenge {
    /// Names the challenge in `verifyOtp`.
    pub challenge_id: String,
    /// When the code stops working.
    pub expires_at: Millis,
    /// Digits in the code.
    pub code_length: u32,
}

const CODE_GONE: Error =
    Error::WrongSecret("this code has expired or was already used; request a new one");
const CODE_WRONG: Error = Error::WrongSecret("the code is wrong");
const RESET_GONE: Error =
    Error::WrongSecret("this reset link is invalid or has expired; request a new one");

fn otp_context(challenge_id: &str) -> String {
    format!("otp:{challenge_id}")
}

impl Auth {
    /// `FORBIDDEN` unless the tenant's allow and deny lists admit the address; checked on
    /// every path that creates an account or sends a code.
    pub(super) fn check_lists(&self, tenant: &Tenant, email: &Email) -> Result<()> {
        if tenant.settings.admits(email) {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "this email address may not sign up or sign in here".into(),
            ))
        }
    }

    /// Mail a sign-in code. Earlier open codes of the address stop working.
    pub async fn request_otp(
        &self,
        tenant: &Tenant,
        email: &str,
        origin: &Device,
    ) -> Result<OtpChallenge> {
        otp_enabled(tenant)?;
        self.throttle(tenant, Guarded::RequestOtp, email, origin)
            .await?;
        let email = Email::parse(email)?;
        self.check_lists(tenant, &email)?;
        let settings = &tenant.settings;
        let code_length = settings.otp_length.clamp(4, 10);
        let ttl_ms = settings.otp_ttl_seconds.clamp(1, 86_400) * 1000;
        let user = self.store.user_by_email(&tenant.id, &email).await?;
        let id = new_id();
        let code = crypto::random_digits(code_length);
        let now = now_ms();
        let template = if user.is_some() {
            Template::Signin
        } else {
            Template::Signup
        };
        // With sign-up closed an unknown address could never use its code: nothing is mailed,
        // and the answer stays the same, so it tells nobody whether the address has an account.
        let mail = if user.is_some() || settings.sign_up_enabled {
            Some(self.mailer.compose(
                tenant,
                &email,
                template,
                json!({ "code": code, "expires_minutes": (ttl_ms + 59_999) / 60_000, "email": email.as_str() }),
            )?)
        } else {
            None
        };
        let challenge = NewChallenge {
            id: &id,
            kind: ChallengeKind::Otp,
            email: email.as_str(),
            user_id: user.as_ref().map(|o| o.user.id.as_str()),
            secret_hash: &self.master.keyed_hash(&otp_context(&id), &code),
            max_attempts: i64::from(settings.max_login_attempts.clamp(1, 20)),
            expires_at: now + ttl_ms,
        };
        // Recorded for unknown addresses too (without a user), so the work is the same.
        let audit = AuditEvent {
            action: AuditAction::UserOtpRequested,
            actor: user.as_ref().map(|o| Caller::user_actor(&o.user.id)),
            user_id: user.as_ref().map(|o| o.user.id.as_str()),
            session_id: None,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: json!({ "challengeId": id }),
        };
        self.store
            .open_challenge(&tenant.id, &challenge, now, mail.as_ref(), Some(&audit))
            .await?;
        self.mailer.wake();
        metrics::counter!("auth_otp_requested_total").increment(1);
        let expires_at = challenge.expires_at;
        Ok(OtpChallenge {
            challenge_id: id,
            expires_at,
            code_length,
        })
    }

    /// Turn a mailed code into a session, creating the account on first use.
    pub async fn verify_otp(
        &self,
        tenant: &Tenant,
        email: &str,
        challenge_id: &str,
        code: &str,
        origin: &Device,
    ) -> Result<Issued> {
        otp_enabled(tenant)?;
        self.throttle(tenant, Guarded::VerifyOtp, email, origin)
            .await?;
        let email = Email::parse(email)?;
        let now = now_ms();
        let challenge = match self
            .store
            .attempt_challenge(&tenant.id, ChallengeKind::Otp, challenge_id, now)
            .await
        {
            Err(StoreError::NotFound) => return Err(CODE_GONE),
            other => other?,
        };
        let expected = self
            .master
            .keyed_hash(&otp_context(&challenge.id), code.trim());
        // Compare the hash whatever the email, so a mismatch of either costs the same.
        let right = crypto::constant_time_eq(&expected, &challenge.secret_hash)
            & crypto::constant_time_eq(&challenge.email, email.as_str());
        if !right {
            if challenge.attempts >= challenge.max_attempts {
                self.store
                    .close_challenge(&challenge.id, "attempts", now)
                    .await?;
            }
            metrics::counter!("auth_sign_ins_total", "method" => "otp", "outcome" => "invalid_credentials").increment(1);
            if let Some(user_id) = challenge.user_id.as_deref() {
                self.store
                    .audit(
                        &tenant.id,
                        AuditEvent {
                            action: AuditAction::UserSignInFailed,
                            actor: Some(Caller::user_actor(user_id)),
                            user_id: Some(user_id),
                            session_id: None,
                            ip: origin.ip.as_deref(),
                            user_agent: origin.user_agent.as_deref(),
                            detail: json!({ "method": "otp", "reason": "wrong_code", "attemptsLeft": challenge.max_attempts - challenge.attempts }),
                        },
                    )
                    .await;
            }
            return Err(CODE_WRONG);
        }
        if !self
            .store
            .close_challenge(&challenge.id, "used", now)
            .await?
        {
            return Err(CODE_GONE);
        }
        self.check_lists(tenant, &email)?;
        metrics::counter!("auth_sign_ins_total", "method" => "otp", "outcome" => "success")
            .increment(1);
        let owner = match self.store.user_by_email(&tenant.id, &email).await? {
            Some(owner) => owner,
            None => {
                if !tenant.settings.sign_up_enabled {
                    return Err(Error::Forbidden("sign-up is closed in this tenant".into()));
                }
                let roles = self.configured_roles(tenant, &email);
                let new = NewUser {
                    email: &email,
                    verified: true,
                    password_hash: None,
                    name_display: None,
                    roles: roles.clone(),
                    configured_roles: roles,
                };
                match self.store.create_user(&tenant.id, new).await {
                    Ok(user) => {
                        return self
                            .start_session(
                                tenant,
                                user,
                                SignInMethod::Otp,
                                AuditAction::UserSignUp,
                                origin,
                                None,
                            )
                            .await;
                    }
                    // Created meanwhile (by a password sign-up, say): the code proved the
                    // address, so that account is treated as any unproven one below.
                    Err(StoreError::Conflict(_)) => self
                        .store
                        .user_by_email(&tenant.id, &email)
                        .await?
                        .ok_or(CODE_GONE)?,
                    Err(error) => return Err(error.into()),
                }
            }
        };
        let mut user = owner.user;
        // Before the proof below changes the account.
        self.refuse_disabled(tenant, &user, SignInMethod::Otp, origin)
            .await?;
        if !owner.verified {
            self.first_proof(tenant, &mut user, &email, origin).await?;
        }
        self.sync_configured_roles(tenant, &email, true, &mut user)
            .await?;
        self.start_session(
            tenant,
            user,
            SignInMethod::Otp,
            AuditAction::UserSignIn,
            origin,
            None,
        )
        .await
    }

    /// The address of an account that signed up with a password has just been proven by a
    /// code for the first time. Whoever set that password never proved the address: it may
    /// be somebody who signed up with it before its owner (account pre-hijacking). So the
    /// password goes and every session it started ends (with feed entries, so verifiers
    /// refuse at once) before the owner's session starts.
    async fn first_proof(
        &self,
        tenant: &Tenant,
        user: &mut User,
        email: &Email,
        origin: &Device,
    ) -> Result<()> {
        let revoking = self.revoking(tenant, RevokeReason::EmailProven);
        if !self.store.prove_email(revoking, &user.id, email).await? {
            return Ok(());
        }
        self.feed.announce();
        // The proof cut off the user's tokens until this second: the session about to start
        // must mint past it (the verifier and the API refuse `iat <= cutoff`).
        user.tokens_valid_after = user.tokens_valid_after.max(now_ms() / 1000);
        let password_removed = user.password_hash.take().is_some();
        self.audit_detail(
            tenant,
            AuditAction::UserEmailVerified,
            &user.id,
            origin,
            json!({ "via": "otp", "password_removed": password_removed }),
        )
        .await;
        Ok(())
    }

    /// Mail a password-reset secret if the address has an account; the answer, and the
    /// work done before it, are the same when it has none: the mail is rendered and sealed
    /// for unknown addresses too, and the writes (the challenge, and for an account its mail
    /// and audit row) happen after answering, so that the answer's timing says nothing about
    /// the address. A write that fails then is logged; the person asks again.
    pub async fn request_password_reset(
        &self,
        tenant: &Tenant,
        email: &str,
        origin: &Device,
    ) -> Result<()> {
        self.throttle(tenant, Guarded::RequestPasswordReset, email, origin)
            .await?;
        let email = Email::parse(email)?;
        let user = self
            .store
            .user_by_email(&tenant.id, &email)
            .await?
            .map(|owner| owner.user);
        let token = crypto::random_token(32);
        let link = tenant.settings.password_reset_url.as_deref().map(|url| {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}token={token}")
        });
        let mail = self.mailer.compose(
            tenant,
            &email,
            Template::PasswordReset,
            json!({ "token": token, "link": link, "expires_minutes": RESET_TTL_MS / 60_000, "email": email.as_str() }),
        )?;
        let now = now_ms();
        let secret_hash = crypto::token_hash(&token);
        let (auth, tenant, origin) = (self.clone(), tenant.clone(), origin.clone());
        tokio::spawn(async move {
            let id = new_id();
            let challenge = NewChallenge {
                id: &id,
                kind: ChallengeKind::Reset,
                email: email.as_str(),
                user_id: user.as_ref().map(|u| u.id.as_str()),
                secret_hash: &secret_hash,
                max_attempts: 1,
                expires_at: now + RESET_TTL_MS,
            };
            let mail = user.is_some().then_some(&mail);
            if let Err(error) = auth
                .store
                .open_challenge(&tenant.id, &challenge, now, mail, None)
                .await
            {
                tracing::error!(error = %error, "password reset not recorded");
                return;
            }
            if let Some(user) = user {
                auth.mailer.wake();
                auth.audit(
                    &tenant,
                    None,
                    AuditAction::UserPasswordResetRequested,
                    &user.id,
                    None,
                    &origin,
                )
                .await;
            }
        });
        Ok(())
    }

    /// Set a new password with a mailed reset secret. Every session of the account ends
    /// (verifiers hear of it at once) and a new one starts.
    pub async fn reset_password(
        &self,
        tenant: &Tenant,
        token: &str,
        new_password: &str,
        origin: &Device,
    ) -> Result<Issued> {
        let secret_hash = crypto::token_hash(token.trim());
        let Some(email) = self
            .store
            .open_reset_email(&tenant.id, &secret_hash, now_ms())
            .await?
        else {
            return Err(RESET_GONE);
        };
        // A disabled account is refused before anything changes: its password stays, its
        // reset secret stays unspent.
        let address = Email::parse(&email)?;
        if let Some(found) = self.store.user_by_email(&tenant.id, &address).await? {
            self.refuse_disabled(tenant, &found.user, SignInMethod::Password, origin)
                .await?;
        }
        let password = Password::new(new_password, &[email.as_str()])?;
        let hash = super::passwords::hash(&password).await?;
        let revoking = self.revoking(tenant, RevokeReason::PasswordReset);
        let (user_id, first_proof) = match self
            .store
            .reset_password(revoking, &secret_hash, &hash, now_ms())
            .await
        {
            Err(StoreError::NotFound) => return Err(RESET_GONE),
            other => other?,
        };
        self.feed.announce();
        if first_proof {
            let detail = json!({ "via": "password_reset", "password_replaced": true });
            self.audit_detail(
                tenant,
                AuditAction::UserEmailVerified,
                &user_id,
                origin,
                detail,
            )
            .await;
        }
        let mut user = self.store.user_by_id(&tenant.id, &user_id).await?;
        self.sync_configured_roles(tenant, &address, true, &mut user)
            .await?;
        self.start_session(
            tenant,
            user,
            SignInMethod::Password,
            AuditAction::UserPasswordReset,
            origin,
            Some(&address),
        )
        .await
    }
}

/// `FORBIDDEN` unless the tenant offers sign-in codes by mail.
fn otp_enabled(tenant: &Tenant) -> Result<()> {
    if tenant.settings.otp_enabled {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "sign-in codes are not enabled in this tenant".into(),
        ))
    }
}
