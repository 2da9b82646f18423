//! Avatars: `Avatar::parse` never panics on any data URL, and what it accepts is within the
//! size and side limits, its declared type being the one its bytes have. The input is the
//! data URL itself, or (first byte 0) the raw bytes of an image wrapped in each type's URL.

#![no_main]

use auth_api::domain::Avatar;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64 * 1024;

fn check(url: &str) {
    if let Ok(avatar) = Avatar::parse(url, MAX) {
        assert!(avatar.bytes <= MAX);
        assert!(avatar.width >= 1 && avatar.height >= 1);
        assert!(avatar.width <= 1024 && avatar.height <= 1024, "{avatar:?}");
        assert!(avatar.data_url.starts_with("data:image/"));
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, image)) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(image);
            for mime in ["image/png", "image/jpeg", "image/webp", "image/gif"] {
                check(&format!("data:{mime};base64,{encoded}"));
            }
        }
        _ => {
            if let Ok(url) = std::str::from_utf8(data) {
                check(url);
            }
        }
    }
});
