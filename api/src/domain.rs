//! Parsed values and plain records of the domain. Values such as [`Email`], [`Password`] and
//! [`TenantSlug`] are parsed once at the edge and trusted inside.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch: how every time is stored.
pub type Millis = i64;

/// The current time in milliseconds since the epoch.
pub fn now_ms() -> Millis {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// A new time-ordered id (UUID v7) as text.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Why a value given by a client was refused; becomes `BAD_USER_INPUT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// An email address, trimmed and lower-cased, so that uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// Parse and normalise an address.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let normalised = raw.trim().to_lowercase();
        if normalised.len() > 254 || !email_address::EmailAddress::is_valid(&normalised) {
            return Err(Invalid("email is not a valid address".into()));
        }
        // Quoted local parts and IP-literal domains are legal but not addresses people use.
        let (_, domain) = normalised.rsplit_once('@').unwrap_or_default();
        if normalised.contains('"') || !domain.contains('.') || domain.starts_with('[') {
            return Err(Invalid("email is not a valid address".into()));
        }
        Ok(Self(normalised))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }

    /// Whether a list entry names this address: a whole address, or a domain written
    /// `example.com` or `@example.com` (which also covers its subdomains).
    pub fn matches_pattern(&self, entry: &str) -> bool {
        let entry = entry.trim().to_lowercase();
        if entry.is_empty() {
            return false;
        }
        if let Some(domain) = entry.strip_prefix('@') {
            return self.in_domain(domain);
        }
        if entry.contains('@') {
            return entry == self.0;
        }
        self.in_domain(&entry)
    }

    fn in_domain(&self, domain: &str) -> bool {
        let own = self.domain();
        own == domain
            || own
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.'))
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password that meets the rules of NIST SP 800-63B: at least 8 characters, at most
/// 256 (long passphrases welcome), and not among the most common passwords. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    /// Smallest length, in characters.
    pub const MIN_CHARS: usize = 8;
    /// Largest length, in characters.
    pub const MAX_CHARS: usize = 256;

    /// Check a new password; `context` (the email, the name) makes passwords built from the
    /// user's own details count as guessable.
    pub fn new(raw: &str, context: &[&str]) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(Invalid(format!(
                "password must have at least {} characters",
                Self::MIN_CHARS
            )));
        }
        if chars > Self::MAX_CHARS {
            return Err(Invalid(format!(
                "password must have at most {} characters",
                Self::MAX_CHARS
            )));
        }
        // zxcvbn knows the common-password lists; score 0 or 1 means guessable online
        // (fewer than 10^6 guesses).
        let score = zxcvbn::zxcvbn(raw, context).score();
        if (score as u8) < 2 {
            return Err(Invalid(
                "password is too common or too easy to guess; a few unrelated words make a good one"
                    .into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

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
    /// How mail looks.
    pub branding: Branding,
    /// Mail templates replacing the shipped ones, by template name (`signin`, …).
    pub templates: std::collections::BTreeMap<String, MailTemplate>,
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
            branding: Branding::default(),
            templates: std::collections::BTreeMap::new(),
        }
    }
}

/// A tenant's look in mail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Branding {
    /// Product name shown in mail; the tenant's name when unset.
    pub product_name: Option<String>,
    /// Logo URL for HTML mail.
    pub logo_url: Option<String>,
    /// Accent colour for HTML mail, e.g. `#2f6fed`.
    pub primary_color: Option<String>,
    /// Sender, e.g. `Acme <no-reply@acme.test>`; `AUTH_MAIL_FROM` when unset.
    pub mail_from: Option<String>,
    /// Where people can ask for help.
    pub support_email: Option<String>,
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
    /// Whether the lists let `email` create an account or receive a code: not deny-listed,
    /// and allow-listed when there is an allow list.
    pub fn admits(&self, email: &Email) -> bool {
        let matches = |list: &[String]| list.iter().any(|entry| email.matches_pattern(entry));
        !matches(&self.deny_list) && (self.allow_list.is_empty() || matches(&self.allow_list))
    }
}

/// A scope of a machine token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The tenant's admin operations.
    Admin,
    /// Read linked providers' tokens of the tenant's users.
    Connections,
    /// Manage tenants.
    Platform,
    /// Follow the revocation feed and introspect tokens (verifiers).
    Verify,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Scope::Admin,
        Scope::Connections,
        Scope::Platform,
        Scope::Verify,
    ];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Connections => "connections",
            Scope::Platform => "platform",
            Scope::Verify => "verify",
        }
    }

    /// Parse a scope name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == raw.trim())
            .ok_or_else(|| {
                Invalid(format!(
                    "unknown scope {raw:?}; known: admin, connections, platform, verify"
                ))
            })
    }
}

/// The role that makes a user an administrator of their tenant.
pub const ADMIN_ROLE: &str = "admin";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "a b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_follow_nist() {
        assert!(Password::new("short", &[]).is_err());
        assert!(Password::new("password", &[]).is_err());
        assert!(Password::new("12345678", &[]).is_err());
        assert!(Password::new("qwertyuiop", &[]).is_err());
        assert!(Password::new(&"x".repeat(257), &[]).is_err());
        assert!(Password::new("correct horse battery staple", &[]).is_ok());
        assert!(Password::new(&"long passphrase with many words ".repeat(6), &[]).is_ok());
    }

    #[test]
    fn slugs_and_scopes_parse() {
        assert!(TenantSlug::parse("acme-2").is_ok());
        for bad in ["", "Acme", "-x", "a_b", &"a".repeat(64)] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Scope::parse("verify"), Ok(Scope::Verify));
        assert!(Scope::parse("root").is_err());
    }
}
