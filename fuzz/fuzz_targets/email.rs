//! Email addresses: `Email::parse` never panics, and what it accepts is a fixed point (the
//! normalised address parses to itself), its domain is what follows the last `@`, and an
//! ASCII case change or surrounding whitespace normalises to the same address.

#![no_main]

use auth_api::domain::Email;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(email) = Email::parse(raw) else {
        return;
    };
    assert_eq!(Email::parse(email.as_str()).as_ref(), Ok(&email), "{raw:?}");
    assert!(email.as_str().ends_with(&format!("@{}", email.domain())));
    let shouted = format!("  {}\t", raw.to_ascii_uppercase());
    assert_eq!(Email::parse(&shouted).as_ref(), Ok(&email), "{raw:?}");
    let _ = email.matches_pattern(email.domain());
});
