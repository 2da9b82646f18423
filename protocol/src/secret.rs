//! A secret that does not print itself: tokens and keys in configuration and in clients.

/// A secret whose `Debug` shows `"***"`, so that logging a configuration or a client that
/// holds one never shows it. Parsed from any text (`FromStr`, for clap), read only through
/// [`Secret::expose`].
/// No `PartialEq`: comparing secrets is for constant-time code, not `==`.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret's text, for the one place that sends or uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Secret(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret_and_expose_shows_it() {
        let s: Secret = "mt_very_secret".parse().unwrap();
        assert_eq!(format!("{s:?}"), "\"***\"");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(\"***\")");
        assert_eq!(s.expose(), "mt_very_secret");
        assert_eq!(
            Secret::new("a").expose(),
            Secret::from("a".to_owned()).expose()
        );
    }
}
