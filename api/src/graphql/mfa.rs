//! Second factors: the second step of sign-in (`verifyMfa`), the authenticator app and its
//! recovery codes, and an admin's reset.

use async_graphql::{Context, ID, Object};

use super::error::{ErrorCode, coded};
use super::guard::Access;
use super::types::{
    AuthPayload, DisableTotpInput, RecoveryCodes, TotpEnrollment, VerifyFactorInput, VerifyMfaInput,
};
use super::{GqlResultExt, caller, parts, spend_hashes};
use crate::service::{DisableProof, Enroller, Factor};

/// Second-factor mutations.
#[derive(Default)]
pub struct MfaMutation;

/// The enroller of a request: the mfaToken when one is given (and then no bearer token), or
/// the signed-in user.
async fn enroller<'a>(
    ctx: &Context<'a>,
    mfa_token: &'a Option<String>,
) -> async_graphql::Result<Enroller<'a>> {
    let (_, request) = parts(ctx)?;
    match mfa_token.as_deref() {
        Some(_) if request.bearer.is_some() => Err(coded(
            ErrorCode::BadUserInput,
            "send either a bearer token or an mfaToken, not both",
        )),
        Some(token) => Ok(Enroller::Pending(token)),
        None => {
            let caller = caller(ctx).await?;
            if !caller.is_user() {
                return Err(coded(
                    ErrorCode::Forbidden,
                    "this operation needs a signed-in user",
                ));
            }
            Ok(Enroller::Session(caller))
        }
    }
}

#[Object]
impl MfaMutation {
    /// Finish a sign-in that answered `MFA_REQUIRED`: its `mfaToken` and exactly one of
    /// `totpCode`, `recoveryCode`, `passkey`. A wrong factor is `INVALID_CREDENTIALS` and the
    /// mfaToken stays usable; the fifth wrong one ends it (`RATE_LIMITED`), as do five in a
    /// row for the user over any mfaTokens. An unknown, expired or used mfaToken is
    /// `UNAUTHENTICATED`: sign in again.
    async fn verify_mfa(
        &self,
        ctx: &Context<'_>,
        input: VerifyMfaInput,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, request) = parts(ctx)?;
        let factor = match (&input.totp_code, &input.recovery_code, &input.passkey) {
            (Some(code), None, None) => Factor::Totp(code),
            (None, Some(code), None) => Factor::Recovery(code),
            (None, None, Some(credential)) => Factor::Passkey(&credential.0),
            _ => {
                return Err(coded(
                    ErrorCode::BadUserInput,
                    "give exactly one of totpCode, recoveryCode and passkey",
                ));
            }
        };
        auth.verify_mfa(&request.tenant, &input.mfa_token, factor, &request.origin)
            .await
            .gql()
            .map(AuthPayload)
    }

    /// Start enrolling an authenticator app: a new secret, its otpauth URI and QR code
    /// (shown once). Nothing is on until `confirmTotpEnrollment`. Signed in, or with the
    /// `mfaToken` of an `MFA_REQUIRED` whose methods are `["enroll"]` (the tenant demands a
    /// factor) and no bearer token.
    async fn start_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        mfa_token: Option<String>,
    ) -> async_graphql::Result<TotpEnrollment> {
        let (auth, request) = parts(ctx)?;
        let who = enroller(ctx, &mfa_token).await?;
        auth.start_totp_enrollment(&request.tenant, who, &request.origin)
            .await
            .gql()
            .map(Into::into)
    }

    /// Switch the enrolled authenticator app on with its first code; answers ten recovery
    /// codes, shown once. The caller's session goes on. With an `mfaToken` for enrolment,
    /// `signIn` holds the session the sign-in was waiting for.
    async fn confirm_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        code: String,
        mfa_token: Option<String>,
    ) -> async_graphql::Result<RecoveryCodes> {
        let (auth, request) = parts(ctx)?;
        let who = enroller(ctx, &mfa_token).await?;
        auth.confirm_totp_enrollment(&request.tenant, who, &code, &request.origin)
            .await
            .gql()
            .map(RecoveryCodes)
    }

    /// Switch the authenticator app off, confirmed by exactly one of a current code or the
    /// password. Recovery codes go too unless a passkey remains.
    #[graphql(guard = "Access::User", complexity = 50)]
    async fn disable_totp(
        &self,
        ctx: &Context<'_>,
        input: DisableTotpInput,
    ) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        let proof = match (&input.totp_code, &input.password) {
            (Some(code), None) => DisableProof::TotpCode(code),
            (None, Some(password)) => {
                spend_hashes(ctx, 1)?;
                DisableProof::Password(password)
            }
            _ => {
                return Err(coded(
                    ErrorCode::BadUserInput,
                    "give exactly one of totpCode and password",
                ));
            }
        };
        let caller = caller(ctx).await?;
        auth.disable_totp(&request.tenant, caller, proof, &request.origin)
            .await
            .gql()
            .map(|()| true)
    }

    /// Replace every recovery code by ten new ones (shown once), confirmed by a current code.
    #[graphql(guard = "Access::User")]
    async fn regenerate_recovery_codes(
        &self,
        ctx: &Context<'_>,
        input: VerifyFactorInput,
    ) -> async_graphql::Result<RecoveryCodes> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.regenerate_recovery_codes(&request.tenant, caller, &input.totp_code, &request.origin)
            .await
            .gql()
            .map(|codes| {
                RecoveryCodes(crate::service::RecoveryCodes {
                    codes,
                    issued: None,
                })
            })
    }

    /// Remove every second factor of a user of this tenant (admin); their sessions go on.
    /// `true` when anything was removed.
    #[graphql(guard = "Access::Admin")]
    async fn admin_reset_mfa(&self, ctx: &Context<'_>, user_id: ID) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.admin_reset_mfa(&request.tenant, caller, &user_id, &request.origin)
            .await
            .gql()
    }
}
