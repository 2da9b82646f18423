//! Password sign-up and sign-in, and the roles configuration grants (`AUTH_ADMIN_EMAILS`)
//! to proven addresses.

use super::limits::Guarded;
use super::mfa::PendingSignIn;
use super::passwords;
use super::{Auth, Error, Issued, Result};
use crate::domain::{
    ADMIN_ROLE, AuditAction, Device, Email, Password, SignInMethod, Tenant, TenantSlug, User,
};
use crate::store::StoreError;
use crate::store::users::NewUser;

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

impl Auth {
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
        if !tenant.settings.password_enabled {
            return Err(Error::Forbidden(
                "password sign-in is not enabled in this tenant".into(),
            ));
        }
        if !tenant.settings.sign_up_enabled {
            return Err(Error::Forbidden("sign-up is closed in this tenant".into()));
        }
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
        self.start_session(
            tenant,
            user,
            SignInMethod::Password,
            AuditAction::UserSignUp,
            origin,
            None,
        )
        .await
    }

    /// Sign in with email and password. An unknown email and a wrong password answer
    /// alike, in time too: the attempt is counted (and a locked address refused) before the
    /// hash, whether or not the address has an account, and the audit row of a failure is
    /// written after answering.
    ///
    /// Round trips: the brute-force guard (the rate buckets, then the lockout count: one
    /// statement on PostgreSQL) runs beside the one read of the address's owner with their
    /// second factors, so a sign-in waits on one statement before the hash and on its
    /// session's one statement after it.
    pub async fn sign_in(
        &self,
        tenant: &Tenant,
        email: &str,
        password: &str,
        origin: &Device,
    ) -> Result<Issued> {
        if !tenant.settings.password_enabled {
            return Err(Error::Forbidden(
                "password sign-in is not enabled in this tenant".into(),
            ));
        }
        let typed = email;
        let Ok(email) = Email::parse(typed) else {
            self.throttle(tenant, Guarded::SignIn, typed, origin)
                .await?;
            // Still spend the hash, so malformed and unknown look the same from outside.
            passwords::verify(password, None).await?;
            metrics::counter!("auth_sign_ins_total", "method" => "password", "outcome" => "invalid_credentials").increment(1);
            return Err(Error::InvalidCredentials);
        };
        let guard = self.guard_sign_in(tenant, typed, &email, origin);
        let owner = async {
            Ok(self
                .store
                .user_by_email_with_factors(&tenant.id, &email)
                .await?)
        };
        let ((), owner) = tokio::try_join!(guard, owner)?;
        let hash = owner
            .as_ref()
            .and_then(|(o, _)| o.user.password_hash.as_deref());
        let matches = passwords::verify(password, hash).await?;
        if !matches {
            metrics::counter!("auth_sign_ins_total", "method" => "password", "outcome" => "invalid_credentials").increment(1);
            if let Some((owner, _)) = owner {
                let (auth, tenant, origin) = (self.clone(), tenant.clone(), origin.clone());
                tokio::spawn(async move {
                    auth.audit(
                        &tenant,
                        None,
                        AuditAction::UserSignInFailed,
                        &owner.user.id,
                        None,
                        &origin,
                    )
                    .await;
                });
            }
            return Err(Error::InvalidCredentials);
        }
        let (owner, factors) = owner.expect("a verified password belongs to a user");
        let mut user = owner.user;
        self.sync_configured_roles(tenant, &email, owner.verified, &mut user)
            .await?;
        metrics::counter!("auth_sign_ins_total", "method" => "password", "outcome" => "success")
            .increment(1);
        let pending = PendingSignIn {
            method: SignInMethod::Password,
            action: AuditAction::UserSignIn,
            forget_attempts_of: Some(&email),
            oauth: None,
            factors: Some(self.factor_status(factors)),
        };
        self.start_pending(tenant, user, &pending, origin).await
    }

    /// Grant or take back the roles configuration gives (`AUTH_ADMIN_EMAILS` makes the
    /// addresses it lists admins of the default tenant, a tenant's `admins` setting those it
    /// lists admins of that tenant): granted only when `email`, the
    /// address the user just signed in with, is listed and `verified`; taken back when it no
    /// longer is, if configuration granted it (a role given otherwise stays).
    pub(super) async fn sync_configured_roles(
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

    /// The roles configuration grants a new account whose address `email` is proven.
    pub(super) fn configured_roles(&self, tenant: &Tenant, email: &Email) -> Vec<String> {
        if self.is_configured_admin(tenant, email) {
            vec![ADMIN_ROLE.to_owned()]
        } else {
            vec![]
        }
    }

    /// Whether configuration lists `email` as an admin of `tenant`: `AUTH_ADMIN_EMAILS` for
    /// the default tenant, and each tenant's `admins` setting.
    pub(super) fn is_configured_admin(&self, tenant: &Tenant, email: &Email) -> bool {
        let by_environment = tenant.slug == TenantSlug::DEFAULT
            && self
                .config
                .admin_emails
                .iter()
                .any(|admin| admin.trim().eq_ignore_ascii_case(email.as_str()));
        by_environment || tenant.settings.lists_admin(email)
    }
}
