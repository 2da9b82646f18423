//! New passwords and the rules they must meet (NIST SP 800-63B).

use std::fmt;

use super::Invalid;

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
