//! GraphQL object and input types, mapped from the service's records.

use async_graphql::{
    ComplexObject, Context, ID, InputObject, Json, Object, Scalar, ScalarType, SimpleObject, Value,
};

use super::{GqlResultExt, caller, parts};
use crate::domain::{self, Millis};
use crate::service::{self, Caller, Issued};

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

/// Tokens and who they are for.
pub struct AuthPayload(pub Issued);

#[Object]
impl AuthPayload {
    /// Short-lived JWT; send as `Authorization: Bearer …`.
    async fn access_token(&self) -> &str {
        &self.0.tokens.access_token
    }
    /// Opaque, single-use; exchange with `refreshSession`.
    async fn refresh_token(&self) -> &str {
        &self.0.tokens.refresh_token
    }
    /// Always `Bearer`.
    async fn token_type(&self) -> &str {
        "Bearer"
    }
    /// Seconds until the access token expires.
    async fn expires_in(&self) -> i64 {
        self.0.tokens.expires_in
    }
    /// The user.
    async fn user(&self) -> User {
        User(self.0.user.clone())
    }
    /// The session the tokens belong to.
    async fn session(&self) -> Session {
        Session {
            session: self.0.session.clone(),
            current: true,
        }
    }
}

/// A user of the tenant.
pub struct User(pub domain::User);

/// A person's name.
#[derive(SimpleObject)]
pub struct Name {
    /// First name.
    pub first: Option<String>,
    /// Last name.
    pub last: Option<String>,
    /// Display name.
    pub display: Option<String>,
}

/// An address waiting for its owner to confirm it.
#[derive(SimpleObject)]
pub struct PendingEmail {
    /// The address.
    pub email: String,
    /// When it was added.
    pub created_at: DateTime,
}

/// An address the user used to have.
#[derive(SimpleObject)]
pub struct PreviousEmail {
    /// The address.
    pub email: String,
    /// When it was added.
    pub created_at: DateTime,
}

/// A user's addresses.
#[derive(SimpleObject)]
pub struct Emails {
    /// The address mail goes to and the user signs in with.
    pub primary: Option<String>,
    /// Every confirmed address.
    pub active: Vec<String>,
    /// Addresses awaiting confirmation.
    pub pending: Vec<PendingEmail>,
    /// Addresses removed or replaced.
    pub previous: Vec<PreviousEmail>,
}

#[Object]
impl User {
    /// User id (the `sub` of their tokens).
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Name.
    async fn name(&self) -> Name {
        Name {
            first: self.0.name_first.clone(),
            last: self.0.name_last.clone(),
            display: self.0.name_display.clone(),
        }
    }
    /// Avatar URL.
    async fn avatar(&self) -> Option<&str> {
        self.0.avatar.as_deref()
    }
    /// Addresses.
    async fn emails(&self, ctx: &Context<'_>) -> async_graphql::Result<Emails> {
        let (auth, _) = parts(ctx)?;
        let rows = auth
            .store()
            .user_emails(&self.0.tenant_id, &self.0.id)
            .await
            .map_err(service::Error::from)
            .gql()?;
        let mut emails = Emails {
            primary: None,
            active: vec![],
            pending: vec![],
            previous: vec![],
        };
        for row in rows {
            match row.state.as_str() {
                "active" => {
                    if row.is_primary {
                        emails.primary = Some(row.email.clone());
                    }
                    emails.active.push(row.email);
                }
                "pending" => emails.pending.push(PendingEmail {
                    email: row.email,
                    created_at: DateTime(row.created_at),
                }),
                _ => emails.previous.push(PreviousEmail {
                    email: row.email,
                    created_at: DateTime(row.created_at),
                }),
            }
        }
        Ok(emails)
    }
    /// Roles in the tenant (`admin`, …), as carried in access tokens.
    async fn roles(&self) -> &[String] {
        &self.0.roles
    }
    /// Free-form metadata.
    async fn metadata(&self) -> Json<serde_json::Value> {
        Json(self.0.metadata.clone())
    }
    /// When the account was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
}

/// A signed-in device.
pub struct Session {
    /// The record.
    pub session: domain::Session,
    /// Whether it is the caller's own.
    pub current: bool,
}

impl Session {
    /// Wrap a record, marking whether it is the caller's session.
    pub fn for_caller(session: domain::Session, caller: &Caller) -> Self {
        let current =
            matches!(caller, Caller::User { session_id, .. } if *session_id == session.id);
        Self { session, current }
    }
}

/// Where a session was started.
#[derive(SimpleObject)]
pub struct Device {
    /// Operating system.
    pub os: Option<String>,
    /// Browser.
    pub browser: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Coarse location, when known.
    pub location: Option<String>,
}

#[Object]
impl Session {
    /// Session id (the `sid` of its tokens).
    async fn id(&self) -> ID {
        ID(self.session.id.clone())
    }
    /// Whether this is the session of the token making the request.
    async fn current(&self) -> bool {
        self.current
    }
    /// How it was started: `password`, `otp`, `oauth:<provider>`.
    async fn method(&self) -> &str {
        &self.session.method
    }
    /// Device it was started from.
    async fn device(&self) -> Device {
        let device = &self.session.device;
        Device {
            os: device.os.clone(),
            browser: device.browser.clone(),
            ip: device.ip.clone(),
            location: None,
        }
    }
    /// Start.
    async fn created_at(&self) -> DateTime {
        DateTime(self.session.created_at)
    }
    /// Last refresh or authenticated request (minute precision).
    async fn last_seen_at(&self) -> DateTime {
        DateTime(self.session.last_seen_at)
    }
    /// Absolute end; refreshing does not extend it.
    async fn expires_at(&self) -> DateTime {
        DateTime(self.session.expires_at)
    }
    /// When it was revoked, if it was.
    async fn revoked_at(&self) -> Option<DateTime> {
        self.session.revoked_at.map(DateTime)
    }
}

/// A machine token, without its secret.
pub struct ApiToken(pub domain::ApiToken);

#[Object]
impl ApiToken {
    /// Token id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Name given at creation.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Scopes: `admin`, `connections`, `platform`, `verify`.
    async fn scopes(&self) -> Vec<&'static str> {
        self.0.scopes.iter().map(|s| s.as_str()).collect()
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// Last time it authenticated a request (minute precision).
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
}

/// A machine token just created. The secret is shown this once and never again.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CreatedApiToken {
    /// The token's `mt_…` secret: store it now.
    pub secret: String,
    #[graphql(skip)]
    pub token: domain::ApiToken,
}

#[ComplexObject]
impl CreatedApiToken {
    /// Token id.
    async fn id(&self) -> ID {
        ID(self.token.id.clone())
    }
    /// The token.
    async fn token(&self) -> ApiToken {
        ApiToken(self.token.clone())
    }
}

/// A tenant.
pub struct Tenant(pub crate::domain::Tenant);

#[Object]
impl Tenant {
    /// Internal id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Slug: the `X-Tenant` header and the `tid` claim.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
}

/// What anyone may know about the tenant before signing in.
#[derive(SimpleObject)]
pub struct TenantInfo {
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Enabled sign-in methods.
    pub sign_in_methods: Vec<String>,
}

/// `signUp` input.
#[derive(InputObject)]
pub struct SignUpInput {
    /// Email address; case does not matter.
    pub email: String,
    /// At least 8 characters, not a common password; long passphrases welcome.
    pub password: String,
    /// Display name.
    pub name: Option<String>,
}

/// `signIn` input.
#[derive(InputObject)]
pub struct SignInInput {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// `requestOtp` input.
#[derive(InputObject)]
pub struct RequestOtpInput {
    /// Where to send the code.
    pub email: String,
}

/// `verifyOtp` input.
#[derive(InputObject)]
pub struct VerifyOtpInput {
    /// The address the code was sent to.
    pub email: String,
    /// `challengeId` from `requestOtp`.
    pub challenge_id: ID,
    /// The code from the mail.
    pub code: String,
}

/// `resetPassword` input.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The secret from the reset mail.
    pub token: String,
    /// The new password.
    pub new_password: String,
}

/// `changePassword` input.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// The password the account has now.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

/// A sign-in code on its way. The answer is the same whether or not the address has an
/// account; `verifyOtp` creates one on first use.
#[derive(SimpleObject)]
pub struct OtpChallenge {
    /// Pass to `verifyOtp`.
    pub challenge_id: ID,
    /// When the code stops working.
    pub expires_at: DateTime,
    /// Digits in the code.
    pub code_length: i32,
}

impl From<service::OtpChallenge> for OtpChallenge {
    fn from(challenge: service::OtpChallenge) -> Self {
        Self {
            challenge_id: ID(challenge.challenge_id),
            expires_at: DateTime(challenge.expires_at),
            code_length: challenge.code_length as i32,
        }
    }
}

/// `createApiToken` input.
#[derive(InputObject)]
pub struct CreateApiTokenInput {
    /// A name to recognise it by.
    pub name: String,
    /// Scopes: `admin`, `connections`, `platform`, `verify`.
    pub scopes: Vec<String>,
}

/// `createTenant` input.
#[derive(InputObject)]
pub struct CreateTenantInput {
    /// Slug: 1-63 lower-case letters, digits or dashes.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// Read the caller and wrap sessions for them.
pub(crate) async fn sessions_for(
    ctx: &Context<'_>,
    sessions: Vec<domain::Session>,
) -> async_graphql::Result<Vec<Session>> {
    let caller = caller(ctx).await?;
    Ok(sessions
        .into_iter()
        .map(|s| Session::for_caller(s, caller))
        .collect())
}
