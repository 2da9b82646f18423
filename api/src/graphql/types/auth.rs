//! What sign-in operations answer and take: the token payload, the code challenge, and
//! their inputs.

use async_graphql::{ID, InputObject, Object, SimpleObject};

use super::{DateTime, Session, User};
use crate::service::{self, Issued};

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
