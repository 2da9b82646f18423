//! Email addresses, parsed once at the edge: trimmed and lower-cased.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Email;

    /// Addresses people use: dotted local parts with `+tags`, dotted domains.
    fn address() -> impl Strategy<Value = String> {
        (
            "[a-z0-9]{1,12}(\\.[a-z0-9]{1,8})?(\\+[a-z0-9]{1,6})?",
            "[a-z0-9]{1,10}(-[a-z0-9]{1,5})?(\\.[a-z0-9]{1,8})?\\.[a-z]{2,6}",
        )
            .prop_map(|(local, domain)| format!("{local}@{domain}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any ASCII case and surrounding whitespace normalise to the same address, which
        /// parses to itself.
        #[test]
        fn normalised_emails_compare_equal(
            address in address(),
            flips in prop::collection::vec(any::<bool>(), 64),
            before in "[ \t]{0,3}",
            after in "[ \t\r\n]{0,3}",
        ) {
            let canonical = Email::parse(&address).expect("a valid address");
            prop_assert_eq!(canonical.as_str(), address.as_str());
            let shaken: String = address
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            let other = Email::parse(&format!("{before}{shaken}{after}")).expect("still valid");
            prop_assert_eq!(&other, &canonical);
            prop_assert_eq!(Email::parse(other.as_str()), Ok(other.clone()));
        }

        /// Two addresses are equal once parsed exactly when they are equal ignoring ASCII case.
        #[test]
        fn parsed_equality_is_case_insensitive_equality(a in address(), b in address()) {
            let same = a.eq_ignore_ascii_case(&b);
            let upper = b.to_ascii_uppercase();
            prop_assert_eq!(Email::parse(&a).unwrap() == Email::parse(&upper).unwrap(), same);
        }
    }
}
