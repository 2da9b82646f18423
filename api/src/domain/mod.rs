//! Records and parsed values of the domain, no I/O. Values such as [`Email`], [`Password`]
//! and [`TenantSlug`] are parsed once at the edge and trusted inside; records such as
//! [`User`], [`Session`] and [`ApiToken`] are what the store returns and the service works
//! with.

mod audit;
mod email;
mod machine_token;
mod mail;
mod passkey;
mod password;
mod profile;
mod provider;
mod scope;
mod session;
mod tenant;
mod user;

pub use audit::{AuditAction, AuditRecord, RevokeReason, SignInMethod};
pub use email::Email;
pub use machine_token::ApiToken;
pub use mail::Composed;
pub use passkey::{PASSKEY_NAME_MAX_CHARS, Passkey, passkey_name};
pub use password::Password;
pub use profile::{
    AVATAR_MAX_SIDE, Avatar, Change, FieldInvalid, ImageFormat, METADATA_MAX_BYTES, NAME_MAX_CHARS,
    NameChange, check_metadata,
};
pub use provider::{Connection, ConnectionSecrets, Endpoints, Provider, ProviderKind};
pub use scope::{ADMIN_ROLE, Scope};
pub use session::{Device, Session};
pub use tenant::{
    AccountSettings, Branding, MailTemplate, MfaPolicy, Tenant, TenantSettings, TenantSlug, Theme,
};
pub use user::{EmailState, User, UserEmail};

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
