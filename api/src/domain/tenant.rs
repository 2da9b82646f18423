//! Tenants: their slugs, their records and their own settings.

use serde::{Deserialize, Serialize};

use super::{Email, Invalid, Millis};

/// A tenant's slug: 1 to 63 lower-case letters, digits and dashes, starting with a letter
/// or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TenantSlug(String);

impl TenantSlug {
    /// The tenant that always exists.
    pub const DEFAULT: &'static str = "default";

    /// Parse a slug.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = !raw.is_empty()
            && raw.len() <= 63
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid(
                "tenant must be 1-63 lower-case letters, digits or dashes".into(),
            ))
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Internal id.
    pub id: String,
    /// Public slug, carried in tokens as `tid` and named by `X-Tenant`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: Millis,
    /// Sign-in rules, branding and mail templates.
    pub settings: TenantSettings,
}

/// A tenant's own rules, stored as JSON with the tenant; every field has a default, so an
/// empty object is a complete configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TenantSettings {
    /// Digits in an emailed sign-in code.
    pub otp_length: u32,
    /// Lifetime of a sign-in code, in seconds.
    pub otp_ttl_seconds: i64,
    /// Wrong codes a challenge survives; the next wrong one kills it.
    pub max_login_attempts: u32,
    /// When not empty, only these emails and domains (`example.com` or `@example.com`) may
    /// create accounts or receive sign-in codes.
    pub allow_list: Vec<String>,
    /// Emails and domains that may never create accounts or receive codes.
    pub deny_list: Vec<String>,
    /// Link in password-reset mail; the token is appended as `token=…`. Unset: the mail
    /// carries the token alone.
    pub password_reset_url: Option<String>,
    /// Lifetime of the code that confirms an added address, in seconds.
    pub pending_email_ttl_seconds: i64,
    /// JSON Schema that every user's `metadata` must satisfy; none when unset.
    pub metadata_schema: Option<serde_json::Value>,
    /// How mail looks.
    pub branding: Branding,
    /// Mail templates replacing the shipped ones, by template name (`signin`, …).
    pub templates: std::collections::BTreeMap<String, MailTemplate>,
    /// Whether new accounts may be created (by password sign-up or a first sign-in code).
    pub sign_up_enabled: bool,
    /// Whether email and password sign-in (and sign-up) is offered.
    pub password_enabled: bool,
    /// Whether sign-in codes by mail are offered.
    pub otp_enabled: bool,
    /// Absolute lifetime of a session, in seconds; `AUTH_SESSION_TTL_SECONDS` when unset.
    pub session_ttl_seconds: Option<i64>,
    /// A session unused (not refreshed) for longer than this many seconds is refused at
    /// refresh and revoked; off when unset.
    pub session_idle_seconds: Option<i64>,
    /// Lifetime of access tokens, in seconds, at most `AUTH_ACCESS_TTL_SECONDS` (which it
    /// is when unset).
    pub access_token_ttl_seconds: Option<i64>,
    /// Emails that get the `admin` role at their next sign-in with that address proven,
    /// like `AUTH_ADMIN_EMAILS` does for the default tenant.
    pub admins: Vec<String>,
    /// Days audit events are kept; the janitor deletes older ones.
    pub audit_retention_days: u32,
    /// Origins of browser frontends allowed to call the API for this tenant (CORS), on top
    /// of `AUTH_CORS_ORIGINS`.
    pub allowed_origins: Vec<String>,
    /// Account rules: whether a second factor is demanded.
    pub account: AccountSettings,
}

/// A tenant's account rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AccountSettings {
    /// Who must have a second factor.
    pub mfa: MfaPolicy,
}

/// Who must sign in with a second factor. Whoever has one is always asked for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    /// Nobody is made to enrol.
    #[default]
    Optional,
    /// Users with the `admin` role must enrol before their session starts.
    Admins,
    /// Everybody must enrol before their session starts.
    Required,
}

impl MfaPolicy {
    /// Whether a user with `roles` must have a second factor.
    pub fn demands(self, roles: &[String]) -> bool {
        match self {
            Self::Optional => false,
            Self::Admins => roles.iter().any(|r| r == super::ADMIN_ROLE),
            Self::Required => true,
        }
    }
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            otp_length: 6,
            otp_ttl_seconds: 600,
            max_login_attempts: 3,
            allow_list: Vec::new(),
            deny_list: Vec::new(),
            password_reset_url: None,
            pending_email_ttl_seconds: 86_400,
            metadata_schema: None,
            branding: Branding::default(),
            templates: std::collections::BTreeMap::new(),
            sign_up_enabled: true,
            password_enabled: true,
            otp_enabled: true,
            session_ttl_seconds: None,
            session_idle_seconds: None,
            access_token_ttl_seconds: None,
            admins: Vec::new(),
            audit_retention_days: 365,
            allowed_origins: Vec::new(),
            account: AccountSettings::default(),
        }
    }
}

/// A tenant's look in mail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Branding {
    /// Product name shown in mail; the tenant's name when unset.
    pub product_name: Option<String>,
    /// Company behind the product.
    pub company_name: Option<String>,
    /// Logo URL for HTML mail.
    pub logo_url: Option<String>,
    /// Accent colour for HTML mail, e.g. `#2f6fed`.
    pub primary_color: Option<String>,
    /// Sender, e.g. `Acme <no-reply@acme.test>`; `AUTH_MAIL_FROM` when unset.
    pub mail_from: Option<String>,
    /// Where people can ask for help.
    pub support_email: Option<String>,
    /// Avatar URL of users who have none.
    pub default_avatar: Option<String>,
    /// Colours of the light theme.
    pub light: Theme,
    /// Colours of the dark theme.
    pub dark: Theme,
}

/// The colours of one theme (`#rgb` or `#rrggbb` each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Theme {
    /// Background of primary elements.
    pub primary_background: Option<String>,
    /// Text on primary elements.
    pub primary_foreground: Option<String>,
    /// Background of secondary elements.
    pub secondary_background: Option<String>,
    /// Text on secondary elements.
    pub secondary_foreground: Option<String>,
}

/// One mail template: minijinja sources for the subject and the bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MailTemplate {
    /// Subject line.
    pub subject: Option<String>,
    /// Plain-text body.
    pub text: Option<String>,
    /// HTML body.
    pub html: Option<String>,
}

impl TenantSettings {
    /// Whether `email` is listed in `admins` (case-insensitively).
    pub fn lists_admin(&self, email: &Email) -> bool {
        self.admins
            .iter()
            .any(|admin| admin.trim().eq_ignore_ascii_case(email.as_str()))
    }

    /// Whether the lists let `email` create an account or receive a code: not deny-listed,
    /// and allow-listed when there is an allow list.
    pub fn admits(&self, email: &Email) -> bool {
        let matches = |list: &[String]| list.iter().any(|entry| email.matches_pattern(entry));
        !matches(&self.deny_list) && (self.allow_list.is_empty() || matches(&self.allow_list))
    }
}
