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
