//! The user's own profile and addresses: `updateProfile` (name, avatar checked by its bytes,
//! metadata against the tenant's JSON Schema, compiled once per schema and cached), the
//! address flows (`addEmail` → pending with a mailed code, `verifyEmail`, `removeEmail`,
//! `setPrimaryEmail`) and other users' public profiles.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use serde_json::json;

use super::mail::Template;
use super::{Auth, Caller, Device, Error, Result, user_of};
use crate::crypto;
use crate::domain::{
    AuditAction, Avatar, Change, Email, EmailState, FieldInvalid, NameChange, Tenant, User,
    check_metadata, new_id, now_ms,
};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;
use crate::store::challenges::{ChallengeKind, NewChallenge};
use crate::store::profile::ProfileFields;

const EMAIL_CODE_GONE: Error =
    Error::WrongSecret("this code has expired or was already used; add the address again");
const EMAIL_CODE_WRONG: Error = Error::WrongSecret("the code is wrong");

fn email_context(challenge_id: &str) -> String {
    format!("email:{challenge_id}")
}

/// What `updateProfile` changes; absent parts stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    /// The name, as given (a string or `{first, last, display}`); `None` = unchanged.
    pub name: Option<serde_json::Value>,
    /// A data URL, `Clear` to remove the avatar.
    pub avatar: Change<String>,
    /// A new metadata object (replaces the old one).
    pub metadata: Option<serde_json::Value>,
}

/// Another user of the tenant as anyone signed in may see them: no address, metadata,
/// roles or sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicProfile {
    /// User id.
    pub id: String,
    /// First name.
    pub name_first: Option<String>,
    /// Last name.
    pub name_last: Option<String>,
    /// Display name.
    pub name_display: Option<String>,
    /// Avatar data URL, or the tenant's default avatar when the user has none.
    pub avatar: Option<String>,
}

/// Compiled metadata schemas, one per tenant, recompiled when the tenant's schema changes
/// (keyed by a hash of its JSON).
#[derive(Default)]
pub(super) struct Schemas {
    by_tenant: Mutex<HashMap<String, (String, Arc<jsonschema::Validator>)>>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas").finish_non_exhaustive()
    }
}

impl Schemas {
    /// The tenant's compiled schema, if its settings hold one.
    fn validator(&self, tenant: &Tenant) -> Result<Option<Arc<jsonschema::Validator>>> {
        let Some(schema) = tenant.settings.metadata_schema.as_ref() else {
            return Ok(None);
        };
        let hash = crypto::token_hash(&schema.to_string());
        let mut cache = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, validator)) = cache.get(&tenant.id)
            && *cached == hash
        {
            return Ok(Some(validator.clone()));
        }
        let validator = Arc::new(
            jsonschema::validator_for(schema)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("the tenant's metadataSchema does not compile")?,
        );
        metrics::counter!("auth_metadata_schema_compiled_total").increment(1);
        cache.insert(tenant.id.clone(), (hash, validator.clone()));
        Ok(Some(validator))
    }
}

/// The metadata against the tenant's schema; the first failing place named as
/// `metadata/<JSON pointer>`.
fn check_against(validator: &jsonschema::Validator, metadata: &serde_json::Value) -> Result<()> {
    let Some(error) = validator.iter_errors(metadata).next() else {
        return Ok(());
    };
    let pointer = error.instance_path().to_string();
    let field = format!("metadata{pointer}");
    Err(FieldInvalid::new(
        field.clone(),
        format!("metadata does not match the tenant's schema at {field}: {error}"),
    )
    .into())
}

fn user_event<'a>(
    user_id: &'a str,
    session_id: Option<&'a str>,
    origin: &'a Device,
    action: AuditAction,
    detail: serde_json::Value,
) -> AuditEvent<'a> {
    AuditEvent {
        action,
        actor: Some(Caller::user_actor(user_id)),
        user_id: Some(user_id),
        session_id,
        ip: origin.ip.as_deref(),
        user_agent: origin.user_agent.as_deref(),
        detail,
    }
}

fn session_of(caller: &Caller) -> Option<&str> {
    match caller {
        Caller::User { session_id, .. } => Some(session_id),
        Caller::Machine { .. } => None,
    }
}

fn parse_email(raw: &str) -> Result<Email> {
    Email::parse(raw).map_err(|invalid| FieldInvalid::new("email", invalid.0).into())
}

impl Auth {
    /// Check `metadata` as a user's: a JSON object within the size limit that satisfies the
    /// tenant's `metadataSchema` (also for admins' changes).
    pub(super) fn check_user_metadata(
        &self,
        tenant: &Tenant,
        metadata: &serde_json::Value,
    ) -> Result<()> {
        check_metadata(metadata)?;
        if let Some(validator) = self.profiles.validator(tenant)? {
            check_against(&validator, metadata)?;
        }
        Ok(())
    }

    /// Change the caller's name, avatar and metadata; what is not given stays. Every part
    /// is checked before anything is written; the change and its audit events (profile,
    /// avatar) commit together.
    pub async fn update_profile(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        update: ProfileUpdate,
        origin: &Device,
    ) -> Result<User> {
        let user_id = user_of(caller)?;
        let name = update
            .name
            .as_ref()
            .map(NameChange::parse)
            .transpose()?
            .unwrap_or_default();
        let avatar = match update.avatar {
            Change::Keep => Change::Keep,
            Change::Clear => Change::Clear,
            Change::Set(url) => Change::Set(
                Avatar::parse(&url, self.config.avatar_max_bytes)
                    .map_err(|invalid| Error::from(FieldInvalid::new("avatar", invalid.0)))?,
            ),
        };
        if let Some(metadata) = &update.metadata {
            check_metadata(metadata)?;
            if let Some(validator) = self.profiles.validator(tenant)? {
                check_against(&validator, metadata)?;
            }
        }
        let mut user = match self.store.user_by_id(&tenant.id, user_id).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("user")),
            other => other?,
        };
        let mut changed = Vec::new();
        for (part, change) in [
            ("name.first", &name.first),
            ("name.last", &name.last),
            ("name.display", &name.display),
        ] {
            if change.is_change() {
                changed.push(part);
            }
        }
        user.name_first = name.first.apply(user.name_first);
        user.name_last = name.last.apply(user.name_last);
        user.name_display = name.display.apply(user.name_display);
        let avatar_detail = match &avatar {
            Change::Keep => None,
            Change::Clear => Some(json!({ "avatar": null })),
            Change::Set(a) => Some(json!({
                "avatar": { "type": a.format.mime(), "bytes": a.bytes, "width": a.width, "height": a.height }
            })),
        };
        user.avatar = match avatar {
            Change::Keep => user.avatar,
            Change::Clear => None,
            Change::Set(avatar) => Some(avatar.data_url),
        };
        if let Some(metadata) = update.metadata {
            changed.push("metadata");
            user.metadata = metadata;
        }
        let session_id = session_of(caller);
        let mut events = Vec::new();
        if !changed.is_empty() {
            events.push(user_event(
                user_id,
                session_id,
                origin,
                AuditAction::UserProfileUpdated,
                json!({ "fields": changed }),
            ));
        }
        if let Some(detail) = avatar_detail {
            events.push(user_event(
                user_id,
                session_id,
                origin,
                AuditAction::UserAvatarChanged,
                detail,
            ));
        }
        let fields = ProfileFields {
            name_first: user.name_first.as_deref(),
            name_last: user.name_last.as_deref(),
            name_display: user.name_display.as_deref(),
            avatar: user.avatar.as_deref(),
            metadata: &user.metadata,
        };
        match self
            .store
            .update_profile(&tenant.id, user_id, &fields, &events)
            .await
        {
            Err(StoreError::NotFound) => return Err(Error::NotFound("user")),
            other => other?,
        }
        Ok(user)
    }

    /// Add an address to the caller's account: it is pending, and a code (lifetime from the
    /// tenant's `pendingEmailTtlSeconds`) is mailed to it with the `approveNewEmail`
    /// template. `CONFLICT` when another account of the tenant holds it active,
    /// `BAD_USER_INPUT` when it is already one of the caller's active addresses or the
    /// tenant's lists refuse it. Adding it again sends a new code (the old one stops working).
    pub async fn add_email(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        email: &str,
        origin: &Device,
    ) -> Result<User> {
        let user_id = user_of(caller)?;
        let email = parse_email(email)?;
        self.check_lists(tenant, &email)?;
        let standing = self
            .store
            .address_standing(&tenant.id, user_id, email.as_str())
            .await?;
        if standing.own == Some(EmailState::Active) {
            return Err(
                FieldInvalid::new("email", "this address is already on your account").into(),
            );
        }
        if standing.elsewhere {
            return Err(Error::Conflict(
                "another account uses this email address".into(),
            ));
        }
        let user = self.store.user_by_id(&tenant.id, user_id).await?;
        let settings = &tenant.settings;
        let ttl_ms = settings.pending_email_ttl_seconds.clamp(1, 30 * 86_400) * 1000;
        let code = crypto::random_digits(settings.otp_length.clamp(6, 10));
        let id = new_id();
        let mail = self.mailer.compose(
            tenant,
            &email,
            Template::ApproveNewEmail,
            json!({ "code": code, "expires_minutes": (ttl_ms + 59_999) / 60_000, "email": email.as_str() }),
        )?;
        let now = now_ms();
        let challenge = NewChallenge {
            id: &id,
            kind: ChallengeKind::Email,
            email: email.as_str(),
            user_id: Some(user_id),
            secret_hash: &self.master.keyed_hash(&email_context(&id), &code),
            max_attempts: i64::from(settings.max_login_attempts.clamp(1, 20)),
            expires_at: now + ttl_ms,
        };
        let event = user_event(
            user_id,
            session_of(caller),
            origin,
            AuditAction::UserEmailAdded,
            json!({ "email": email.as_str() }),
        );
        self.store
            .add_pending_email(&tenant.id, &challenge, now, &mail, &event)
            .await?;
        self.mailer.wake();
        Ok(user)
    }

    /// Confirm a pending address of the caller with its mailed code: it becomes active (and
    /// proven). A wrong code answers `INVALID_CREDENTIALS` and counts (after the tenant's
    /// `maxLoginAttempts` the code stops working); an expired, used or superseded one too;
    /// the address stays pending. `CONFLICT` when another account made it active meanwhile.
    pub async fn verify_email(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        email: &str,
        code: &str,
        origin: &Device,
    ) -> Result<User> {
        let user_id = user_of(caller)?;
        let email = parse_email(email)?;
        let now = now_ms();
        let challenge = match self
            .store
            .attempt_email_challenge(&tenant.id, user_id, email.as_str(), now)
            .await
        {
            Err(StoreError::NotFound) => return Err(EMAIL_CODE_GONE),
            other => other?,
        };
        let expected = self
            .master
            .keyed_hash(&email_context(&challenge.id), code.trim());
        if !crypto::constant_time_eq(&expected, &challenge.secret_hash) {
            if challenge.attempts >= challenge.max_attempts {
                self.store
                    .close_challenge(&challenge.id, "attempts", now)
                    .await?;
            }
            self.audit_detail(
                tenant,
                AuditAction::UserEmailConfirmFailed,
                user_id,
                origin,
                json!({ "email": email.as_str() }),
            )
            .await;
            return Err(EMAIL_CODE_WRONG);
        }
        let event = user_event(
            user_id,
            session_of(caller),
            origin,
            AuditAction::UserEmailConfirmed,
            json!({ "email": email.as_str() }),
        );
        match self
            .store
            .confirm_email(&tenant.id, &challenge.id, user_id, email.as_str(), &event)
            .await
        {
            Err(StoreError::Conflict(_)) => {
                return Err(Error::Conflict(
                    "another account uses this email address".into(),
                ));
            }
            Err(StoreError::NotFound) => return Err(EMAIL_CODE_GONE),
            other => other?,
        }
        Ok(self.store.user_by_id(&tenant.id, user_id).await?)
    }

    /// Remove an address from the caller's account: an active one is remembered as
    /// previous and a notice goes to it (`removeEmail` template); a pending one is dropped
    /// with its code. The primary address cannot be removed (`BAD_USER_INPUT`: make another
    /// one primary first); an address the account does not have is `NOT_FOUND`.
    pub async fn remove_email(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        email: &str,
        origin: &Device,
    ) -> Result<User> {
        let user_id = user_of(caller)?;
        let email = parse_email(email)?;
        let standing = self
            .store
            .address_standing(&tenant.id, user_id, email.as_str())
            .await?;
        if standing.primary {
            return Err(FieldInvalid::new(
                "email",
                "the primary address cannot be removed; make another address primary first",
            )
            .into());
        }
        let mail = match standing.own {
            Some(EmailState::Active) => Some(self.mailer.compose(
                tenant,
                &email,
                Template::RemoveEmail,
                json!({ "email": email.as_str() }),
            )?),
            Some(EmailState::Pending) => None,
            _ => return Err(Error::NotFound("email")),
        };
        let event = user_event(
            user_id,
            session_of(caller),
            origin,
            AuditAction::UserEmailRemoved,
            json!({ "email": email.as_str(), "was": standing.own.map(EmailState::as_str) }),
        );
        match self
            .store
            .remove_email(&tenant.id, user_id, email.as_str(), mail.as_ref(), &event)
            .await
        {
            Err(StoreError::NotFound) => return Err(Error::NotFound("email")),
            other => other?,
        };
        if mail.is_some() {
            self.mailer.wake();
        }
        Ok(self.store.user_by_id(&tenant.id, user_id).await?)
    }

    /// Make an active address of the caller the primary one; a notice goes to the old
    /// primary (`changePrimaryEmail`). A pending, previous or unknown address is
    /// `BAD_USER_INPUT`.
    pub async fn set_primary_email(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        email: &str,
        origin: &Device,
    ) -> Result<User> {
        let user_id = user_of(caller)?;
        let email = parse_email(email)?;
        let emails = self.store.user_emails(&tenant.id, user_id).await?;
        if !emails
            .iter()
            .any(|e| e.state == EmailState::Active && e.email == email.as_str())
        {
            return Err(FieldInvalid::new(
                "email",
                "only an active address of the account can be primary; confirm it first",
            )
            .into());
        }
        let old = emails
            .iter()
            .find(|e| e.state == EmailState::Active && e.is_primary)
            .map(|e| e.email.clone());
        let user = self.store.user_by_id(&tenant.id, user_id).await?;
        if old.as_deref() == Some(email.as_str()) {
            return Ok(user);
        }
        let mail = match old.as_deref().map(Email::parse).transpose() {
            Ok(Some(old_email)) => Some(self.mailer.compose(
                tenant,
                &old_email,
                Template::ChangePrimaryEmail,
                json!({ "email": old_email.as_str(), "old_email": old_email.as_str(), "new_email": email.as_str() }),
            )?),
            _ => None,
        };
        let event = user_event(
            user_id,
            session_of(caller),
            origin,
            AuditAction::UserPrimaryEmailChanged,
            json!({ "old": old, "new": email.as_str() }),
        );
        match self
            .store
            .set_primary_email(&tenant.id, user_id, email.as_str(), mail.as_ref(), &event)
            .await
        {
            Err(StoreError::NotFound) => {
                return Err(FieldInvalid::new(
                    "email",
                    "only an active address of the account can be primary; confirm it first",
                )
                .into());
            }
            other => other?,
        }
        if mail.is_some() {
            self.mailer.wake();
        }
        Ok(user)
    }

    /// Another user of the tenant, by id or by an active address, as a signed-in caller
    /// may see them; `None` when there is no such user (a pending or previous address
    /// finds no one).
    pub async fn public_user(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        id_or_email: &str,
    ) -> Result<Option<PublicProfile>> {
        user_of(caller)?;
        let key = id_or_email.trim();
        let user = if key.contains('@') {
            match Email::parse(key) {
                Ok(email) => self
                    .store
                    .user_by_email(&tenant.id, &email)
                    .await?
                    .map(|owner| owner.user),
                Err(_) => None,
            }
        } else {
            match self.store.user_by_id(&tenant.id, key).await {
                Ok(user) => Some(user),
                Err(StoreError::NotFound) => None,
                Err(error) => return Err(error.into()),
            }
        };
        Ok(user.map(|user| PublicProfile {
            id: user.id,
            name_first: user.name_first,
            name_last: user.name_last,
            name_display: user.name_display,
            avatar: user
                .avatar
                .or_else(|| tenant.settings.branding.default_avatar.clone()),
        }))
    }
}
