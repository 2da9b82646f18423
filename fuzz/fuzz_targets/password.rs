//! New passwords: `Password::new` never panics on any text and any context (the first line
//! of the input is the password, the others the user's details), and what it accepts is
//! within the documented length.

#![no_main]

use auth_api::domain::Password;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let raw = lines.next().unwrap_or_default();
    let context: Vec<&str> = lines.take(4).collect();
    if let Ok(password) = Password::new(raw, &context) {
        let chars = password.expose().chars().count();
        assert!((Password::MIN_CHARS..=Password::MAX_CHARS).contains(&chars));
        assert_eq!(password.expose(), raw);
    }
});
