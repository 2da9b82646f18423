//! Second factors as GraphQL sees them: the second step's input, an enrolment, recovery
//! codes (shown once), and which factors a user has on (never a secret).

use async_graphql::{InputObject, Json, Object, SimpleObject};

use super::AuthPayload;
use crate::service;

/// `verifyMfa` input: the mfaToken of an `MFA_REQUIRED` answer and exactly one factor.
#[derive(InputObject)]
pub struct VerifyMfaInput {
    /// `extensions.mfaToken` of the `MFA_REQUIRED` answer.
    pub mfa_token: String,
    /// A current code of the authenticator app (6 digits).
    pub totp_code: Option<String>,
    /// One of the recovery codes (case, spaces and dashes do not matter).
    pub recovery_code: Option<String>,
    /// A passkey assertion: `credential.toJSON()` of `navigator.credentials.get` with
    /// `extensions.passkeyOptions`.
    pub passkey: Option<Json<serde_json::Value>>,
}

/// `disableTotp` input: exactly one of a current code or the password.
#[derive(InputObject)]
pub struct DisableTotpInput {
    /// A current code of the authenticator app.
    pub totp_code: Option<String>,
    /// The account's password.
    pub password: Option<String>,
}

/// A factor confirming a change of the factors (`regenerateRecoveryCodes`).
#[derive(InputObject)]
pub struct VerifyFactorInput {
    /// A current code of the authenticator app.
    pub totp_code: String,
}

/// An authenticator app being enrolled: shown once; nothing is on until
/// `confirmTotpEnrollment`.
#[derive(SimpleObject)]
pub struct TotpEnrollment {
    /// The secret in base32 (160 bits), for typing into the app.
    pub secret: String,
    /// `otpauth://totp/Issuer:account?secret=…&issuer=…`, what the QR code holds.
    pub otpauth_uri: String,
    /// The QR code of `otpauthUri`, an SVG document.
    pub qr_code_svg: String,
}

impl From<service::TotpEnrollment> for TotpEnrollment {
    fn from(e: service::TotpEnrollment) -> Self {
        Self {
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
            qr_code_svg: e.qr_code_svg,
        }
    }
}

/// New recovery codes: ten, each works once, shown only now; the old ones stop working.
pub struct RecoveryCodes(pub service::RecoveryCodes);

#[Object]
impl RecoveryCodes {
    /// The codes.
    async fn recovery_codes(&self) -> &[String] {
        &self.0.codes
    }
    /// The session an enrolment with an mfaToken finished (`confirmTotpEnrollment` with
    /// `mfaToken`); null otherwise.
    async fn sign_in(&self) -> Option<AuthPayload> {
        self.0.issued.clone().map(AuthPayload)
    }
}

/// Which second factors a user has on.
#[derive(SimpleObject)]
pub struct MfaStatus {
    /// Whether a sign-in asks for a second factor.
    pub enabled: bool,
    /// An authenticator app is on.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// Registered passkeys.
    pub passkeys: i64,
}

impl From<service::MfaStatus> for MfaStatus {
    fn from(s: service::MfaStatus) -> Self {
        Self {
            enabled: s.any(),
            totp: s.totp,
            recovery_codes_left: s.recovery_codes_left,
            passkeys: s.passkeys,
        }
    }
}
