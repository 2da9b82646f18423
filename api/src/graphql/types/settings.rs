//! A tenant's settings as admins read and change them, and what `tenantInfo` shows anyone.
//! The input types serialise to the partial JSON object the service merges: absent fields
//! are left out, `null` resets a field to its default.

use async_graphql::{InputObject, Json, MaybeUndefined, SimpleObject};
use serde::Serialize;

use crate::domain::{self, TenantSettings};

/// The colours of one theme.
#[derive(SimpleObject)]
pub struct ThemeColors {
    /// Background of primary elements.
    pub primary_background: Option<String>,
    /// Text on primary elements.
    pub primary_foreground: Option<String>,
    /// Background of secondary elements.
    pub secondary_background: Option<String>,
    /// Text on secondary elements.
    pub secondary_foreground: Option<String>,
}

impl From<&domain::Theme> for ThemeColors {
    fn from(theme: &domain::Theme) -> Self {
        Self {
            primary_background: theme.primary_background.clone(),
            primary_foreground: theme.primary_foreground.clone(),
            secondary_background: theme.secondary_background.clone(),
            secondary_foreground: theme.secondary_foreground.clone(),
        }
    }
}

/// How the tenant looks in mail and in its frontends.
#[derive(SimpleObject)]
pub struct Branding {
    /// Product name; the tenant's name when unset.
    pub product_name: Option<String>,
    /// Company behind the product.
    pub company_name: Option<String>,
    /// Logo URL.
    pub logo_url: Option<String>,
    /// Accent colour (`#rgb` or `#rrggbb`).
    pub primary_color: Option<String>,
    /// Light theme.
    pub light: ThemeColors,
    /// Dark theme.
    pub dark: ThemeColors,
    /// Where people can ask for help.
    pub support_email: Option<String>,
    /// Sender of the tenant's mail; `AUTH_MAIL_FROM` when unset.
    pub mail_from: Option<String>,
    /// Avatar URL of users without one.
    pub default_avatar: Option<String>,
}

impl From<&domain::Branding> for Branding {
    fn from(b: &domain::Branding) -> Self {
        Self {
            product_name: b.product_name.clone(),
            company_name: b.company_name.clone(),
            logo_url: b.logo_url.clone(),
            primary_color: b.primary_color.clone(),
            light: (&b.light).into(),
            dark: (&b.dark).into(),
            support_email: b.support_email.clone(),
            mail_from: b.mail_from.clone(),
            default_avatar: b.default_avatar.clone(),
        }
    }
}

/// A mail template the tenant overrides; unset parts use the shipped ones.
#[derive(SimpleObject)]
pub struct MailTemplate {
    /// Template name: `signup`, `signin`, `passwordReset`, `approveNewEmail`, `removeEmail`,
    /// `changePrimaryEmail`, `mfaFactorAdded`, `mfaFactorRemoved`, `passkeyAdded`,
    /// `passkeyRemoved`.
    pub name: String,
    /// Subject (minijinja).
    pub subject: Option<String>,
    /// Plain-text body (minijinja).
    pub text: Option<String>,
    /// HTML body (minijinja, HTML-escaped).
    pub html: Option<String>,
}

/// Who must sign in with a second factor (`settings.account.mfa`). Whoever has a factor
/// is always asked for it.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    /// Nobody is made to enrol.
    Optional,
    /// Admins must enrol before their session starts.
    Admins,
    /// Everybody must enrol before their session starts.
    Required,
}

impl From<domain::MfaPolicy> for MfaPolicy {
    fn from(policy: domain::MfaPolicy) -> Self {
        match policy {
            domain::MfaPolicy::Optional => Self::Optional,
            domain::MfaPolicy::Admins => Self::Admins,
            domain::MfaPolicy::Required => Self::Required,
        }
    }
}

/// Account rules.
#[derive(SimpleObject)]
pub struct AccountSettings {
    /// Who must have a second factor.
    pub mfa: MfaPolicy,
}

/// Account rules to change.
#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSettingsInput {
    /// Who must have a second factor; `null` resets it to `OPTIONAL`.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub mfa: MaybeUndefined<MfaPolicy>,
}

/// A tenant's settings (admin).
#[derive(SimpleObject)]
pub struct Settings {
    /// Looks.
    pub branding: Branding,
    /// Whether new accounts may be created.
    pub sign_up_enabled: bool,
    /// Whether email and password sign-in is offered.
    pub password_enabled: bool,
    /// Whether sign-in codes by mail are offered.
    pub otp_enabled: bool,
    /// Digits in a sign-in code.
    pub otp_length: u32,
    /// Lifetime of a sign-in code, seconds.
    pub otp_ttl_seconds: i64,
    /// Wrong codes a challenge survives.
    pub max_login_attempts: u32,
    /// When not empty, only these addresses and domains may sign up or get codes.
    pub allow_list: Vec<String>,
    /// Addresses and domains that may never sign up or get codes.
    pub deny_list: Vec<String>,
    /// Absolute session lifetime, seconds; null: `AUTH_SESSION_TTL_SECONDS`.
    pub session_ttl_seconds: Option<i64>,
    /// Sessions unused for longer are refused at refresh; null: off.
    pub session_idle_seconds: Option<i64>,
    /// Access-token lifetime, seconds (at most `AUTH_ACCESS_TTL_SECONDS`); null: that.
    pub access_token_ttl_seconds: Option<i64>,
    /// Lifetime of the code confirming an added address, seconds.
    pub pending_email_ttl_seconds: i64,
    /// Link in password-reset mail.
    pub password_reset_url: Option<String>,
    /// JSON Schema every user's metadata must satisfy.
    pub metadata_schema: Option<Json<serde_json::Value>>,
    /// Addresses that get the admin role at their next sign-in with the address proven.
    pub admins: Vec<String>,
    /// Mail templates the tenant overrides.
    pub templates: Vec<MailTemplate>,
    /// Days audit events are kept.
    pub audit_retention_days: u32,
    /// Browser origins allowed to call the API for this tenant (CORS).
    pub allowed_origins: Vec<String>,
    /// Account rules (second factors).
    pub account: AccountSettings,
}

impl From<TenantSettings> for Settings {
    fn from(s: TenantSettings) -> Self {
        Self {
            branding: (&s.branding).into(),
            sign_up_enabled: s.sign_up_enabled,
            password_enabled: s.password_enabled,
            otp_enabled: s.otp_enabled,
            otp_length: s.otp_length,
            otp_ttl_seconds: s.otp_ttl_seconds,
            max_login_attempts: s.max_login_attempts,
            allow_list: s.allow_list,
            deny_list: s.deny_list,
            session_ttl_seconds: s.session_ttl_seconds,
            session_idle_seconds: s.session_idle_seconds,
            access_token_ttl_seconds: s.access_token_ttl_seconds,
            pending_email_ttl_seconds: s.pending_email_ttl_seconds,
            password_reset_url: s.password_reset_url,
            metadata_schema: s.metadata_schema.map(Json),
            admins: s.admins,
            templates: s
                .templates
                .into_iter()
                .map(|(name, t)| MailTemplate {
                    name,
                    subject: t.subject,
                    text: t.text,
                    html: t.html,
                })
                .collect(),
            audit_retention_days: s.audit_retention_days,
            allowed_origins: s.allowed_origins,
            account: AccountSettings {
                mfa: s.account.mfa.into(),
            },
        }
    }
}

/// Theme colours to change.
#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThemeInput {
    /// Background of primary elements.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub primary_background: MaybeUndefined<String>,
    /// Text on primary elements.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub primary_foreground: MaybeUndefined<String>,
    /// Background of secondary elements.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub secondary_background: MaybeUndefined<String>,
    /// Text on secondary elements.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub secondary_foreground: MaybeUndefined<String>,
}

/// Branding to change; `null` clears a value.
#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrandingInput {
    /// Product name (1-100 characters).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub product_name: MaybeUndefined<String>,
    /// Company name (1-100 characters).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub company_name: MaybeUndefined<String>,
    /// Logo: an https URL (http on loopback).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub logo_url: MaybeUndefined<String>,
    /// Accent colour, `#rgb` or `#rrggbb`.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub primary_color: MaybeUndefined<String>,
    /// Light theme colours.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub light: MaybeUndefined<ThemeInput>,
    /// Dark theme colours.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub dark: MaybeUndefined<ThemeInput>,
    /// Support address.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub support_email: MaybeUndefined<String>,
    /// Sender mailbox, e.g. `Acme <no-reply@acme.test>`.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub mail_from: MaybeUndefined<String>,
    /// Default avatar: an https URL (http on loopback).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub default_avatar: MaybeUndefined<String>,
}

/// A mail template to change: each part given replaces the tenant's, `null` goes back to
/// the shipped one.
#[derive(InputObject)]
pub struct MailTemplateInput {
    /// Template name (see `MailTemplate.name`).
    pub name: String,
    /// Subject.
    pub subject: MaybeUndefined<String>,
    /// Plain-text body.
    pub text: MaybeUndefined<String>,
    /// HTML body.
    pub html: MaybeUndefined<String>,
}

/// A partial update of the settings: fields left out keep their value, `null` resets one to
/// its default. Everything is checked before anything is written.
#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsInput {
    /// Branding changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branding: Option<BrandingInput>,
    /// Whether new accounts may be created.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub sign_up_enabled: MaybeUndefined<bool>,
    /// Whether email and password sign-in is offered.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub password_enabled: MaybeUndefined<bool>,
    /// Whether sign-in codes by mail are offered.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub otp_enabled: MaybeUndefined<bool>,
    /// Digits in a sign-in code (4-10).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub otp_length: MaybeUndefined<u32>,
    /// Sign-in code lifetime, seconds (60-86400).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub otp_ttl_seconds: MaybeUndefined<i64>,
    /// Wrong codes a challenge survives (1-20).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub max_login_attempts: MaybeUndefined<u32>,
    /// Allowed addresses and domains.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub allow_list: MaybeUndefined<Vec<String>>,
    /// Refused addresses and domains.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub deny_list: MaybeUndefined<Vec<String>>,
    /// Absolute session lifetime, seconds (300 to a year).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub session_ttl_seconds: MaybeUndefined<i64>,
    /// Idle session lifetime, seconds (60 to a year); `null` turns it off.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub session_idle_seconds: MaybeUndefined<i64>,
    /// Access-token lifetime, seconds (30 to `AUTH_ACCESS_TTL_SECONDS`).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub access_token_ttl_seconds: MaybeUndefined<i64>,
    /// Lifetime of the code confirming an added address, seconds (300 to 30 days).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub pending_email_ttl_seconds: MaybeUndefined<i64>,
    /// Link in password-reset mail: an https URL (http on loopback).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub password_reset_url: MaybeUndefined<String>,
    /// JSON Schema for users' metadata (replaces the old one whole).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub metadata_schema: MaybeUndefined<Json<serde_json::Value>>,
    /// Addresses made admins at their next sign-in with the address proven.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub admins: MaybeUndefined<Vec<String>>,
    /// Templates to change, by name.
    #[serde(skip)]
    pub templates: Option<Vec<MailTemplateInput>>,
    /// Days audit events are kept (1-3650).
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub audit_retention_days: MaybeUndefined<u32>,
    /// Browser origins allowed to call the API for this tenant.
    #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub allowed_origins: MaybeUndefined<Vec<String>>,
    /// Account rules (second factors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountSettingsInput>,
}

impl SettingsInput {
    /// The partial settings object the service merges.
    pub fn into_patch(self) -> serde_json::Value {
        let templates = self.templates.as_ref().map(|templates| {
            let mut map = serde_json::Map::new();
            for t in templates {
                let mut parts = serde_json::Map::new();
                for (part, value) in [
                    ("subject", &t.subject),
                    ("text", &t.text),
                    ("html", &t.html),
                ] {
                    match value {
                        MaybeUndefined::Undefined => {}
                        MaybeUndefined::Null => {
                            parts.insert(part.into(), serde_json::Value::Null);
                        }
                        MaybeUndefined::Value(v) => {
                            parts.insert(part.into(), v.clone().into());
                        }
                    }
                }
                map.insert(t.name.clone(), parts.into());
            }
            serde_json::Value::Object(map)
        });
        let mut patch = serde_json::to_value(&self).unwrap_or_else(|_| serde_json::json!({}));
        if let (Some(templates), Some(object)) = (templates, patch.as_object_mut()) {
            object.insert("templates".into(), templates);
        }
        patch
    }
}

/// What anyone may know about the tenant before signing in.
#[derive(SimpleObject)]
pub struct TenantInfo {
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Enabled sign-in methods: `password`, `otp` (providers are listed in `providers`).
    pub sign_in_methods: Vec<String>,
    /// Enabled sign-in providers, by name.
    pub providers: Vec<String>,
    /// The same providers as sign-in buttons: name, kind and display name (nothing secret).
    pub sign_in_providers: Vec<super::SignInProvider>,
    /// Whether new accounts may be created.
    pub sign_up_enabled: bool,
    /// Looks (no mail settings).
    pub branding: PublicBranding,
}

/// The public part of the branding.
#[derive(SimpleObject)]
pub struct PublicBranding {
    /// Product name; the tenant's name when unset.
    pub product_name: String,
    /// Company behind the product.
    pub company_name: Option<String>,
    /// Logo URL.
    pub logo_url: Option<String>,
    /// Accent colour.
    pub primary_color: Option<String>,
    /// Light theme.
    pub light: ThemeColors,
    /// Dark theme.
    pub dark: ThemeColors,
    /// Where people can ask for help.
    pub support_email: Option<String>,
    /// Avatar URL of users without one.
    pub default_avatar: Option<String>,
}

impl TenantInfo {
    /// What `tenant` shows anyone.
    pub fn of(tenant: &domain::Tenant) -> Self {
        let s = &tenant.settings;
        let b = &s.branding;
        let mut methods = Vec::new();
        if s.password_enabled {
            methods.push("password".to_owned());
        }
        if s.otp_enabled {
            methods.push("otp".to_owned());
        }
        Self {
            slug: tenant.slug.clone(),
            name: tenant.name.clone(),
            sign_in_methods: methods,
            providers: Vec::new(),
            sign_in_providers: Vec::new(),
            sign_up_enabled: s.sign_up_enabled,
            branding: PublicBranding {
                product_name: b
                    .product_name
                    .clone()
                    .unwrap_or_else(|| tenant.name.clone()),
                company_name: b.company_name.clone(),
                logo_url: b.logo_url.clone(),
                primary_color: b.primary_color.clone(),
                light: (&b.light).into(),
                dark: (&b.dark).into(),
                support_email: b.support_email.clone(),
                default_avatar: b.default_avatar.clone(),
            },
        }
    }
}
