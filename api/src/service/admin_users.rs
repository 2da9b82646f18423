//! Users as admins see them: pages of the tenant's users (keyset, newest first, searchable),
//! one user by id or address, and an admin's changes to a user (name, metadata, roles,
//! disabled, addresses) applied with their audit events in one transaction. Disabling ends
//! every session on the feed; a role change cuts off the tokens that carry the old roles.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::{Auth, Caller, Error, Result};
use crate::domain::{
    ADMIN_ROLE, AuditAction, Device, Email, FieldInvalid, Millis, NameChange, RevokeReason, Tenant,
    User,
};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;
use crate::store::users::{AdminChanges, UserCursor};

/// Largest page of `users`.
pub(super) const MAX_PAGE: i64 = 100;

/// One page of users.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// The users, newest first, each with its cursor.
    pub users: Vec<(String, User)>,
    /// Whether more follow.
    pub has_next: bool,
    /// How many users match in all; `None` when not asked for.
    pub total: Option<i64>,
}

/// An admin's change to a user; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct AdminUserUpdate {
    /// The name, as `updateProfile` takes it (a string or `{first, last, display}`).
    pub name: Option<serde_json::Value>,
    /// Roles (slugs); replaces the user's.
    pub roles: Option<Vec<String>>,
    /// Metadata; replaces the user's, checked against the tenant's schema.
    pub metadata: Option<serde_json::Value>,
    /// Disable (every session ends) or enable again.
    pub disabled: Option<bool>,
    /// The active addresses, primary first.
    pub emails: Option<Vec<String>>,
}

/// A keyset cursor: the `(time, id)` of the last row of a page, opaque to clients. Shared
/// by `users` and `auditLog`.
pub(super) fn encode_cursor(at: Millis, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

/// The `(time, id)` of a cursor from [`encode_cursor`]; `BAD_USER_INPUT` on `after` otherwise.
pub(super) fn decode_cursor(cursor: &str) -> Result<(Millis, String)> {
    let bad = || Error::from(FieldInvalid::new("after", "not a cursor from this list"));
    let text = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

/// Page size: 20 by default, 1 to [`MAX_PAGE`].
pub(super) fn page_size(first: Option<i64>) -> Result<i64> {
    match first {
        None => Ok(20),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(FieldInvalid::new("first", format!("first must be 1 to {MAX_PAGE}")).into()),
    }
}

/// A role slug: a lower-case letter, then up to 31 letters, digits, `-` or `_`.
fn role(field: &str, raw: &str) -> Result<String> {
    let ok = raw.len() <= 32
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(FieldInvalid::new(
            field,
            "a role is a lower-case letter then up to 31 letters, digits, - or _",
        )
        .into())
    }
}

impl Auth {
    /// A page of the tenant's users, newest first: `first` (default 20, at most 100) after
    /// the cursor `after`, matching `search` (part of an active address or of the name,
    /// case-insensitively) when given; with how many match in all when `count` (a count
    /// reads every match: at a million users it costs more than the page).
    pub async fn users(
        &self,
        tenant: &Tenant,
        first: Option<i64>,
        after: Option<&str>,
        search: Option<&str>,
        count: bool,
    ) -> Result<UserPage> {
        let limit = page_size(first)?;
        let after = after
            .map(decode_cursor)
            .transpose()?
            .map(|(created_at, id)| UserCursor { created_at, id });
        let search = search.map(str::trim).filter(|s| !s.is_empty());
        if search.is_some_and(|s| s.chars().count() > 100) {
            return Err(FieldInvalid::new("search", "search is at most 100 characters").into());
        }
        let mut users = self
            .store
            .users_page(&tenant.id, search, after.as_ref(), limit + 1)
            .await?;
        let has_next = users.len() as i64 > limit;
        users.truncate(limit as usize);
        let total = if count {
            Some(self.store.count_users(&tenant.id, search).await?)
        } else {
            None
        };
        Ok(UserPage {
            users: users
                .into_iter()
                .map(|u| (encode_cursor(u.created_at, &u.id), u))
                .collect(),
            has_next,
            total,
        })
    }

    /// A user of the tenant by id, or by an active address when `id_or_email` holds an `@`.
    pub async fn admin_user(&self, tenant: &Tenant, id_or_email: &str) -> Result<Option<User>> {
        let key = id_or_email.trim();
        if key.contains('@') {
            let Ok(email) = Email::parse(key) else {
                return Ok(None);
            };
            return Ok(self
                .store
                .user_by_email(&tenant.id, &email)
                .await?
                .map(|owner| owner.user));
        }
        match self.store.user_by_id(&tenant.id, key).await {
            Ok(user) => Ok(Some(user)),
            Err(StoreError::NotFound) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Change a user of the tenant (admin). Everything is checked before anything is
    /// written; the change and one audit event per kind of change commit together.
    /// `NOT_FOUND` for a user of another tenant.
    pub async fn admin_update_user(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        user_id: &str,
        update: AdminUserUpdate,
        origin: &Device,
    ) -> Result<User> {
        let user = match self.store.user_by_id(&tenant.id, user_id).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("user")),
            other => other?,
        };
        let mut changes = AdminChanges::default();
        let mut actions: Vec<(AuditAction, serde_json::Value)> = Vec::new();
        let mut fields = Vec::new();
        if let Some(name) = &update.name {
            let name = NameChange::parse(name)?;
            changes.name = Some((
                name.first.apply(user.name_first.clone()),
                name.last.apply(user.name_last.clone()),
                name.display.apply(user.name_display.clone()),
            ));
            fields.push("name");
        }
        if let Some(metadata) = update.metadata {
            self.check_user_metadata(tenant, &metadata)?;
            changes.metadata = Some(metadata);
            fields.push("metadata");
        }
        if let Some(emails) = &update.emails {
            if emails.is_empty() || emails.len() > 20 {
                return Err(FieldInvalid::new("emails", "give 1 to 20 addresses").into());
            }
            let mut parsed: Vec<Email> = Vec::new();
            for (i, raw) in emails.iter().enumerate() {
                let email = Email::parse(raw)
                    .map_err(|invalid| FieldInvalid::new(format!("emails.{i}"), invalid.0))?;
                if parsed.contains(&email) {
                    return Err(FieldInvalid::new(format!("emails.{i}"), "listed twice").into());
                }
                parsed.push(email);
            }
            changes.emails = Some(parsed);
            fields.push("emails");
        }
        if !fields.is_empty() {
            actions.push((AuditAction::AdminUserUpdated, json!({ "fields": fields })));
        }
        if let Some(roles) = &update.roles {
            if roles.len() > 20 {
                return Err(FieldInvalid::new("roles", "at most 20 roles").into());
            }
            let mut new: Vec<String> = Vec::new();
            for (i, raw) in roles.iter().enumerate() {
                let slug = role(&format!("roles.{i}"), raw.trim())?;
                if !new.contains(&slug) {
                    new.push(slug);
                }
            }
            if let Caller::User { user_id: me, .. } = caller
                && me == user_id
                && user.roles.iter().any(|r| r == ADMIN_ROLE)
                && !new.iter().any(|r| r == ADMIN_ROLE)
            {
                return Err(Error::Forbidden(
                    "an admin cannot take the admin role from themself".into(),
                ));
            }
            if new != user.roles {
                let configured: Vec<String> = user
                    .configured_roles
                    .iter()
                    .filter(|r| new.contains(r))
                    .cloned()
                    .collect();
                actions.push((
                    AuditAction::AdminRolesChanged,
                    json!({ "from": user.roles, "to": new }),
                ));
                changes.roles = Some((new, configured));
            }
        }
        match update.disabled {
            Some(true) if user.disabled_at.is_none() => {
                if matches!(caller, Caller::User { user_id: me, .. } if me == user_id) {
                    return Err(Error::Forbidden("an admin cannot disable themself".into()));
                }
                changes.disabled = Some(true);
                actions.push((AuditAction::AdminUserDisabled, json!({})));
            }
            Some(false) if user.disabled_at.is_some() => {
                changes.disabled = Some(false);
                actions.push((AuditAction::AdminUserEnabled, json!({})));
            }
            _ => {}
        }
        let actor = caller.actor();
        let events: Vec<AuditEvent<'_>> = actions
            .into_iter()
            .map(|(action, detail)| AuditEvent {
                action,
                actor: Some(actor.clone()),
                user_id: Some(user_id),
                session_id: None,
                ip: origin.ip.as_deref(),
                user_agent: origin.user_agent.as_deref(),
                detail,
            })
            .collect();
        if events.is_empty() {
            return Ok(user);
        }
        let revoking = self.revoking(tenant, RevokeReason::Disabled);
        match self
            .store
            .admin_update_user(revoking, user_id, &changes, &events)
            .await
        {
            Err(StoreError::NotFound) => return Err(Error::NotFound("user")),
            Err(StoreError::Conflict(_)) => {
                return Err(Error::Conflict(
                    "another account of the tenant uses one of these addresses".into(),
                ));
            }
            other => other?,
        };
        if changes.disabled == Some(true) || changes.roles.is_some() {
            self.feed.announce();
        }
        Ok(self.store.user_by_id(&tenant.id, user_id).await?)
    }
}
