//! The arithmetic of the factors, no I/O: RFC 6238 codes (SHA-1, 6 digits, 30 s steps, ±1
//! step of skew) through `totp-rs`, the enrolment's otpauth URI and QR code (SVG), and
//! recovery codes.

use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::crypto;

/// Seconds per step.
pub(super) const STEP_SECONDS: u64 = 30;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
pub(super) const SECRET_BYTES: usize = 20;
/// Recovery codes handed out at a time.
pub(super) const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code: 12 of 32 symbols, 60 bits.
const RECOVERY_CODE_CHARS: usize = 12;
/// Crockford's base32 alphabet in lower case: letters and digits without i, l, o and u,
/// so a code read aloud or typed from paper is not misread.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

fn builder(secret: &[u8]) -> Builder {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
}

/// The TOTP of `secret` for the otpauth URI: labelled `issuer:account`.
pub(super) fn labelled(secret: &[u8], issuer: &str, account: &str) -> anyhow::Result<Totp> {
    // The label's parts may not hold a colon (the URI's separator).
    let clean = |s: &str| s.replace(':', " ").trim().to_owned();
    let issuer = clean(issuer);
    builder(secret)
        .with_issuer((!issuer.is_empty()).then_some(issuer))
        .with_account_name(clean(account))
        .build()
        .map_err(|error| anyhow::anyhow!("TOTP parameters refused: {error:?}"))
}

/// The step `code` is valid for at `now_seconds` (the current one or one either side), if
/// any; the caller makes sure each step is accepted once.
pub(super) fn matched_step(secret: &[u8], code: &str, now_seconds: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let totp = builder(secret).build().ok()?;
    totp.check(&code, now_seconds).map(|step| step as i64)
}

/// The enrolment's otpauth URI as a QR code, an SVG document.
pub(super) fn qr_svg(uri: &str) -> anyhow::Result<String> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|error| anyhow::anyhow!("QR code not rendered: {error}"))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// A new secret and its base32 form.
pub(super) fn new_secret() -> ([u8; SECRET_BYTES], String) {
    let mut secret = [0u8; SECRET_BYTES];
    crypto::fill_random(&mut secret);
    let base32 = Secret::new(secret.to_vec().into_boxed_slice()).to_base32();
    (secret, base32)
}

/// Ten new recovery codes.
pub(super) fn recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; RECOVERY_CODE_CHARS];
            crypto::fill_random(&mut bytes);
            // 256 is a multiple of 32: the low five bits of a random byte are uniform.
            bytes
                .iter()
                .map(|b| char::from(RECOVERY_ALPHABET[usize::from(b & 31)]))
                .collect()
        })
        .collect()
}

/// A recovery code as typed, in the form it was hashed: lower case, without the spaces and
/// dashes people add when copying it.
pub(super) fn normalise_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_rfc_6238_and_one_step_of_skew_only() {
        // RFC 6238 appendix B: the SHA-1 secret "12345678901234567890" at T = 59 s gives
        // 94287082 with 8 digits; its last 6 digits are the 6-digit code.
        let secret = b"12345678901234567890";
        assert_eq!(matched_step(secret, "287082", 59), Some(1));
        assert_eq!(matched_step(secret, "287 082", 59 + 30), Some(1));
        assert_eq!(matched_step(secret, "287082", 59 + 60), None);
        assert_eq!(matched_step(secret, "287083", 59), None);
        assert_eq!(matched_step(secret, "28708", 59), None);
    }

    #[test]
    fn recovery_codes_are_distinct_letters_and_digits() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), 10);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 12);
            assert!(code.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)));
        }
        assert_eq!(normalise_recovery(" AB12-cd34 "), "ab12cd34");
    }

    #[test]
    fn the_uri_carries_the_secret_and_the_qr_code_is_svg() {
        let (secret, base32) = new_secret();
        let uri = labelled(&secret, "Acme: Inc", "ada@example.com")
            .unwrap()
            .to_url()
            .unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&format!("secret={base32}")), "{uri}");
        assert_eq!(base32.len(), 32);
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
    }
}
