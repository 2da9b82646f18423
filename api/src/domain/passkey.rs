//! Passkeys: a user's WebAuthn credentials as the API shows them, and the names people give
//! them.

use super::{FieldInvalid, Millis};

/// Longest passkey name, in characters.
pub const PASSKEY_NAME_MAX_CHARS: usize = 64;

/// A registered passkey, without its key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// Row id (what `renamePasskey` and `deletePasskey` take).
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// The credential id, base64url (what the browser reports as `id`).
    pub credential_id: String,
    /// The name the user gave it.
    pub name: String,
    /// Whether the authenticator may sync it to other devices (backup eligible).
    pub backup_eligible: bool,
    /// Whether it is synced now (backup state, as last reported).
    pub backed_up: bool,
    /// When it was registered.
    pub created_at: Millis,
    /// When it last signed in or confirmed a sign-in.
    pub last_used_at: Option<Millis>,
}

/// A passkey's name: trimmed, 1 to [`PASSKEY_NAME_MAX_CHARS`] characters, no control
/// characters.
pub fn passkey_name(name: &str) -> Result<String, FieldInvalid> {
    let name = name.trim();
    if name.is_empty() {
        return Err(FieldInvalid::new("name", "give the passkey a name"));
    }
    if name.chars().count() > PASSKEY_NAME_MAX_CHARS {
        return Err(FieldInvalid::new(
            "name",
            format!("at most {PASSKEY_NAME_MAX_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldInvalid::new("name", "no control characters"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(passkey_name("  Laptop ").unwrap(), "Laptop");
        assert!(passkey_name("   ").is_err());
        assert!(passkey_name(&"é".repeat(65)).is_err());
        assert!(passkey_name(&"é".repeat(64)).is_ok());
        assert!(passkey_name("a\nb").is_err());
    }
}
