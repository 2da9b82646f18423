//! GraphQL object and input types, mapped from the service's records: one file per
//! aggregate, as in the other layers.

mod admin_user;
mod audit;
mod auth;
mod machine_token;
mod mfa;
mod oauth;
mod passkey;
mod profile;
mod session;
mod settings;
mod tenant;
mod user;

use async_graphql::{Scalar, ScalarType, Value};

pub use admin_user::{AdminUserInput, PageInfo, UserConnection, UserEdge};
pub use audit::{Actor, ActorKind, AuditEvent, AuditEventConnection, AuditEventEdge};
pub use auth::{
    AuthPayload, ChangePasswordInput, OtpChallenge, RequestOtpInput, ResetPasswordInput,
    SignInInput, SignUpInput, VerifyOtpInput,
};
pub use machine_token::{ApiToken, CreateApiTokenInput, CreatedApiToken};
pub use mfa::{
    DisableTotpInput, MfaStatus, RecoveryCodes, TotpEnrollment, VerifyFactorInput, VerifyMfaInput,
};
pub use oauth::{
    CompleteOAuthInput, Connection, ConnectionTokens, IdTokenInput, OAuthStart, ProviderConfig,
    ProviderInput, ProviderKind, SignInProvider, StartOAuthInput,
};
pub use passkey::{
    Passkey, PasskeyChallenge, PasskeyOptions, PasskeyRegistrationInput, PasskeySignInInput,
};
pub use profile::{NameInput, PublicUser, UpdateProfileInput, VerifyEmailInput};
pub(crate) use session::sessions_for;
pub use session::{Device, Session};
pub use settings::{
    AccountSettings, AccountSettingsInput, Branding, BrandingInput, MailTemplate,
    MailTemplateInput, MfaPolicy, PublicBranding, Settings, SettingsInput, TenantInfo, ThemeColors,
    ThemeInput,
};
pub use tenant::{CreateTenantInput, Tenant};
pub use user::{Emails, Name, PendingEmail, PreviousEmail, User};

use crate::domain::Millis;

/// RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub Millis);

/// An RFC 3339 timestamp (UTC), e.g. `2026-11-23T08:53:00.123Z`.
#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        let Value::String(text) = &value else {
            return Err(async_graphql::InputValueError::expected_type(value));
        };
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| async_graphql::InputValueError::custom("expected an RFC 3339 time"))?;
        Ok(DateTime((parsed.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    fn to_value(&self) -> Value {
        let time = time::OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Value::String(
            time.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        )
    }
}
