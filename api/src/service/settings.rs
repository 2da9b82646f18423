//! A tenant's settings: reading them, changing them by a partial update that is validated
//! whole before anything is written, and the per-replica cache of tenants that every request
//! reads through (invalidated on this replica at once and on the others through the store's
//! tenant notifications).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};

use super::mail::Template;
use super::{Auth, Caller, Error, Result};
use crate::domain::{AuditAction, Device, Email, Tenant, TenantSettings, Theme};
use crate::store::audit::AuditEvent;

/// Longest a cached tenant is trusted without hearing of a change: a backstop for a
/// notification lost while the listener reconnected (after which the cache is cleared too).
const CACHE_BACKSTOP: Duration = Duration::from_secs(30);

/// Most tenants kept in the cache.
const CACHE_CAPACITY: u64 = 10_000;

/// Tenants by slug, as this replica last read them.
#[derive(Clone)]
pub(super) struct TenantCache {
    tenants: moka::sync::Cache<String, Tenant>,
    /// Every tenant's `allowedOrigins` together (what a preflight, which names no tenant,
    /// is answered for); rebuilt on first use after any change.
    origins: Arc<std::sync::RwLock<Option<Arc<HashSet<String>>>>>,
    /// Bumped on every invalidation, so that a read that started before one does not put
    /// what it read back into the cache.
    generation: Arc<AtomicU64>,
}

impl TenantCache {
    pub(super) fn new() -> Self {
        Self {
            tenants: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_BACKSTOP)
                .build(),
            origins: Arc::default(),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(super) fn get(&self, slug: &str) -> Option<Tenant> {
        self.tenants.get(slug)
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keep `tenant` unless the cache was invalidated since `generation` was read.
    pub(super) fn put(&self, generation: u64, tenant: Tenant) {
        if self.generation() == generation {
            self.tenants.insert(tenant.slug.clone(), tenant);
        }
    }

    /// Forget one tenant, or every tenant when `slug` is `None`.
    pub(super) fn forget(&self, slug: Option<&str>) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.origins.write().unwrap_or_else(|e| e.into_inner()) = None;
        match slug {
            Some(slug) => self.tenants.invalidate(slug),
            None => self.tenants.invalidate_all(),
        }
    }
}

impl Auth {
    /// The tenant's settings (admin).
    pub async fn settings(&self, tenant: &Tenant) -> Result<TenantSettings> {
        Ok(self.store.tenant_by_id(&tenant.id).await?.settings)
    }

    /// Apply `patch` to the tenant's settings (admin): a JSON object in the shape of the
    /// settings (camelCase) holding only the fields to change; `null` resets a field to its
    /// default. `branding`, its themes and `templates` merge key by key; every other value
    /// replaces the old one. The result is validated whole, and the first invalid value
    /// refused with `BAD_USER_INPUT` naming its dotted path; nothing is written then.
    /// Written with its audit event in one transaction, and every replica hears of it.
    pub async fn update_settings(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        patch: Value,
        origin: &Device,
    ) -> Result<TenantSettings> {
        let current = self.store.tenant_by_id(&tenant.id).await?;
        let changed: Vec<String> = match &patch {
            Value::Object(fields) => fields.keys().cloned().collect(),
            _ => return Err(Error::BadInput("settings must be an object".into())),
        };
        let settings =
            apply_settings_patch(&current.settings, patch, self.config.access_ttl_seconds)?;
        let audit = AuditEvent {
            action: AuditAction::AdminSettingsUpdated,
            actor: Some(caller.actor()),
            user_id: None,
            session_id: None,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: serde_json::json!({ "fields": changed }),
        };
        self.store
            .update_tenant_settings(&tenant.id, &settings, audit)
            .await?;
        self.tenant_changed(&tenant.slug).await;
        Ok(settings)
    }

    /// Whether a browser page on `origin` may call the API in some tenant: listed in
    /// `AUTH_CORS_ORIGINS` or in any tenant's `allowedOrigins`. What preflights answer for.
    pub async fn cors_origin_known(&self, origin: &str) -> bool {
        if self.config.cors_origins.iter().any(|o| o == origin) {
            return true;
        }
        let cached = self
            .tenants
            .origins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let origins = match cached {
            Some(origins) => origins,
            None => {
                let generation = self.tenants.generation();
                let tenants = match self.store.tenants().await {
                    Ok(tenants) => tenants,
                    Err(error) => {
                        tracing::warn!(error = %error, "tenants unavailable for CORS");
                        return false;
                    }
                };
                let all: Arc<HashSet<String>> = Arc::new(
                    tenants
                        .into_iter()
                        .flat_map(|t| t.settings.allowed_origins)
                        .collect(),
                );
                if self.tenants.generation() == generation {
                    *self
                        .tenants
                        .origins
                        .write()
                        .unwrap_or_else(|e| e.into_inner()) = Some(all.clone());
                }
                all
            }
        };
        origins.contains(origin)
    }

    /// Whether a browser page on `origin` may call the API in `tenant`: listed in
    /// `AUTH_CORS_ORIGINS` or in the tenant's `allowedOrigins`.
    pub fn cors_origin_allowed(&self, tenant: &Tenant, origin: &str) -> bool {
        self.config.cors_origins.iter().any(|o| o == origin)
            || tenant.settings.allowed_origins.iter().any(|o| o == origin)
    }

    /// Tell every replica that the tenant `slug` changed: this one forgets it at once, the
    /// others when the notification reaches them (within a second).
    pub async fn tenant_changed(&self, slug: &str) {
        self.tenants.forget(Some(slug));
        self.store.notify_tenant_changed(slug).await;
    }
}

/// Where an object in the patch merges into the current value instead of replacing it.
fn merges(path: &str) -> bool {
    matches!(
        path,
        "branding" | "branding.light" | "branding.dark" | "templates" | "account"
    ) || path
        .strip_prefix("templates.")
        .is_some_and(|rest| !rest.contains('.'))
}

/// JSON merge patch (RFC 7386) restricted to the paths [`merges`] names.
fn merge(target: &mut Value, patch: Value, path: &str) {
    let (Value::Object(target), Value::Object(patch)) = (target, patch) else {
        return;
    };
    for (key, value) in patch {
        let at = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if value.is_null() {
            target.remove(&key);
        } else if value.is_object() && merges(&at) {
            let slot = target
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            merge(slot, value, &at);
        } else {
            target.insert(key, value);
        }
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    let field = field.into();
    Error::BadField {
        message: format!("{field} {}", message.into()),
        field,
    }
}

fn within(field: &str, value: i64, min: i64, max: i64) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be between {min} and {max}")))
    }
}

fn is_hex_color(value: &str) -> bool {
    value
        .strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn color(field: &str, value: Option<&String>) -> Result<()> {
    match value {
        Some(value) if !is_hex_color(value) => {
            Err(invalid(field, "must be a colour written #rgb or #rrggbb"))
        }
        _ => Ok(()),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An https URL, or http on a loopback host.
fn web_url(field: &str, value: &str) -> Result<url::Url> {
    let parsed = url::Url::parse(value).map_err(|_| invalid(field, "must be an absolute URL"))?;
    let secure = parsed.scheme() == "https" || (parsed.scheme() == "http" && is_loopback(&parsed));
    if !secure || parsed.host().is_none() || !parsed.username().is_empty() {
        return Err(invalid(
            field,
            "must be an https URL (http only on a loopback host), without credentials",
        ));
    }
    Ok(parsed)
}

fn optional_url(field: &str, value: Option<&String>) -> Result<()> {
    value.map_or(Ok(()), |value| web_url(field, value).map(drop))
}

/// A browser origin: scheme, host and port, nothing else (`https://app.example.com`).
pub(super) fn origin_entry(field: &str, value: &str) -> Result<()> {
    let parsed = web_url(field, value)?;
    if parsed.origin().ascii_serialization() != value {
        return Err(invalid(
            field,
            "must be an origin: scheme, host and port only, lower-case, no path or trailing slash",
        ));
    }
    Ok(())
}

fn short_text(field: &str, value: Option<&String>) -> Result<()> {
    match value {
        Some(value)
            if value.trim().is_empty()
                || value.chars().count() > 100
                || value.chars().any(char::is_control) =>
        {
            Err(invalid(field, "must have 1 to 100 printable characters"))
        }
        _ => Ok(()),
    }
}

/// An entry of the allow or deny list: a whole address, or a domain (`example.com`,
/// `@example.com`).
fn list_entry(field: &str, entry: &str) -> Result<()> {
    let entry = entry.trim();
    let domain = entry.strip_prefix('@').unwrap_or(entry);
    if domain.contains('@') {
        return Email::parse(domain)
            .map(drop)
            .map_err(|_| invalid(field, "must be an email address or a domain"));
    }
    let labels_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if labels_ok && domain.len() <= 253 {
        Ok(())
    } else {
        Err(invalid(field, "must be an email address or a domain"))
    }
}

fn theme(field: &str, theme: &Theme) -> Result<()> {
    color(
        &format!("{field}.primaryBackground"),
        theme.primary_background.as_ref(),
    )?;
    color(
        &format!("{field}.primaryForeground"),
        theme.primary_foreground.as_ref(),
    )?;
    color(
        &format!("{field}.secondaryBackground"),
        theme.secondary_background.as_ref(),
    )?;
    color(
        &format!("{field}.secondaryForeground"),
        theme.secondary_foreground.as_ref(),
    )
}

/// `current` with `patch` applied (see [`Auth::update_settings`]) and validated whole: the
/// settings to store, or `BAD_USER_INPUT` naming the first invalid value. No I/O: what
/// `updateSettings` checks before it writes anything (and what the fuzzer feeds).
pub fn apply_settings_patch(
    current: &TenantSettings,
    patch: Value,
    max_access_ttl: i64,
) -> Result<TenantSettings> {
    if !patch.is_object() {
        return Err(Error::BadInput("settings must be an object".into()));
    }
    let mut merged = serde_json::to_value(current).map_err(anyhow::Error::from)?;
    merge(&mut merged, patch, "");
    let settings: TenantSettings =
        serde_json::from_value(merged).map_err(|error| Error::BadInput(error.to_string()))?;
    validate(&settings, max_access_ttl)?;
    Ok(settings)
}

/// Check every value of `settings`; the first invalid one is named by its dotted path. A
/// tenant's access tokens may live at most `max_access_ttl` seconds (the configured
/// lifetime, which the revocation feed and the published keys are sized for).
pub(super) fn validate(settings: &TenantSettings, max_access_ttl: i64) -> Result<()> {
    within("otpLength", settings.otp_length.into(), 4, 10)?;
    within("otpTtlSeconds", settings.otp_ttl_seconds, 60, 86_400)?;
    within(
        "maxLoginAttempts",
        settings.max_login_attempts.into(),
        1,
        20,
    )?;
    within(
        "pendingEmailTtlSeconds",
        settings.pending_email_ttl_seconds,
        300,
        30 * 86_400,
    )?;
    if let Some(ttl) = settings.session_ttl_seconds {
        within("sessionTtlSeconds", ttl, 300, 365 * 86_400)?;
    }
    if let Some(idle) = settings.session_idle_seconds {
        within("sessionIdleSeconds", idle, 60, 365 * 86_400)?;
    }
    if let Some(ttl) = settings.access_token_ttl_seconds {
        within("accessTokenTtlSeconds", ttl, 30, max_access_ttl)?;
    }
    within(
        "auditRetentionDays",
        settings.audit_retention_days.into(),
        1,
        3650,
    )?;
    for (name, list) in [
        ("allowList", &settings.allow_list),
        ("denyList", &settings.deny_list),
    ] {
        if list.len() > 1000 {
            return Err(invalid(name, "holds at most 1000 entries"));
        }
        for (i, entry) in list.iter().enumerate() {
            list_entry(&format!("{name}.{i}"), entry)?;
        }
    }
    if settings.admins.len() > 100 {
        return Err(invalid("admins", "holds at most 100 addresses"));
    }
    for (i, admin) in settings.admins.iter().enumerate() {
        Email::parse(admin)
            .map_err(|_| invalid(format!("admins.{i}"), "must be an email address"))?;
    }
    if settings.allowed_origins.len() > 100 {
        return Err(invalid("allowedOrigins", "holds at most 100 origins"));
    }
    for (i, origin) in settings.allowed_origins.iter().enumerate() {
        origin_entry(&format!("allowedOrigins.{i}"), origin)?;
    }
    optional_url("passwordResetUrl", settings.password_reset_url.as_ref())?;
    if let Some(schema) = &settings.metadata_schema {
        if !schema.is_object() {
            return Err(invalid("metadataSchema", "must be a JSON Schema object"));
        }
        jsonschema::validator_for(schema).map_err(|error| {
            invalid(
                "metadataSchema",
                format!("is not a valid JSON Schema: {error}"),
            )
        })?;
    }
    let branding = &settings.branding;
    short_text("branding.productName", branding.product_name.as_ref())?;
    short_text("branding.companyName", branding.company_name.as_ref())?;
    optional_url("branding.logoUrl", branding.logo_url.as_ref())?;
    optional_url("branding.defaultAvatar", branding.default_avatar.as_ref())?;
    color("branding.primaryColor", branding.primary_color.as_ref())?;
    theme("branding.light", &branding.light)?;
    theme("branding.dark", &branding.dark)?;
    if let Some(support) = &branding.support_email {
        Email::parse(support)
            .map_err(|_| invalid("branding.supportEmail", "must be an email address"))?;
    }
    if let Some(from) = &branding.mail_from {
        from.parse::<lettre::message::Mailbox>().map_err(|_| {
            invalid(
                "branding.mailFrom",
                "must be a mailbox, e.g. `Acme <no-reply@acme.test>`",
            )
        })?;
    }
    // Compiled only, in an environment of their own: rendering happens when mail is sent.
    let env = minijinja::Environment::new();
    for (name, template) in &settings.templates {
        if !Template::ALL.iter().any(|t| t.name() == name) {
            let names: Vec<&str> = Template::ALL.iter().map(|t| t.name()).collect();
            return Err(invalid(
                format!("templates.{name}"),
                format!("is not a template; the templates are {}", names.join(", ")),
            ));
        }
        for (part, source, ext) in [
            ("subject", &template.subject, "txt"),
            ("text", &template.text, "txt"),
            ("html", &template.html, "html"),
        ] {
            let Some(source) = source else { continue };
            let field = format!("templates.{name}.{part}");
            if source.len() > 100_000 {
                return Err(invalid(field, "is longer than 100000 bytes"));
            }
            let template_name = format!("{name}.{part}.{ext}");
            env.template_from_named_str(&template_name, source.as_str())
                .map_err(|error| invalid(&field, format!("does not compile: {error}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_values_and_merges_only_the_named_objects() {
        let mut target = serde_json::json!({
            "otpLength": 6,
            "metadataSchema": {"type": "object", "required": ["a"]},
            "branding": {"productName": "A", "light": {"primaryBackground": "#fff"}},
        });
        merge(
            &mut target,
            serde_json::json!({
                "otpLength": 8,
                "metadataSchema": {"type": "object"},
                "branding": {"logoUrl": "https://x.test/l.png", "light": {"primaryForeground": "#000"}, "productName": null},
            }),
            "",
        );
        assert_eq!(
            target,
            serde_json::json!({
                "otpLength": 8,
                "metadataSchema": {"type": "object"},
                "branding": {"logoUrl": "https://x.test/l.png", "light": {"primaryBackground": "#fff", "primaryForeground": "#000"}},
            })
        );
    }

    #[test]
    fn origins_are_exact() {
        assert!(origin_entry("o", "https://app.example.com").is_ok());
        assert!(origin_entry("o", "http://127.0.0.1:5173").is_ok());
        assert!(origin_entry("o", "http://app.example.com").is_err());
        assert!(origin_entry("o", "https://app.example.com/").is_err());
        assert!(origin_entry("o", "https://app.example.com/x").is_err());
        assert!(origin_entry("o", "*").is_err());
    }
}
