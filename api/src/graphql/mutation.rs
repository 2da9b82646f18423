//! Mutations.

use async_graphql::{Context, ID, Object};

use super::guard::Access;
use super::types::{
    AuthPayload, ChangePasswordInput, CreateApiTokenInput, CreateTenantInput, CreatedApiToken,
    OtpChallenge, RequestOtpInput, ResetPasswordInput, SignInInput, SignUpInput, Tenant,
    VerifyOtpInput,
};
use super::{GqlResultExt, caller, parts, spend_hashes};
use crate::domain::Scope;
use crate::service;

/// Sign-in, sessions, account, admin and platform mutations.
#[derive(Default)]
pub struct CoreMutation;

#[Object]
impl CoreMutation {
    /// Create an account with email and password, and sign it in.
    #[graphql(complexity = 50)]
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        input: SignUpInput,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, request) = parts(ctx)?;
        spend_hashes(ctx, 1)?;
        auth.sign_up(
            &request.tenant,
            &input.email,
            &input.password,
            input.name.as_deref(),
            &request.origin,
        )
        .await
        .gql()
        .map(AuthPayload)
    }

    /// Sign in with email and password. Unknown email and wrong password both answer
    /// `INVALID_CREDENTIALS`.
    #[graphql(complexity = 50)]
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        input: SignInInput,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, request) = parts(ctx)?;
        spend_hashes(ctx, 1)?;
        auth.sign_in(
            &request.tenant,
            &input.email,
            &input.password,
            &request.origin,
        )
        .await
        .gql()
        .map(AuthPayload)
    }

    /// Mail a sign-in code. The answer is the same whether or not the address has an account;
    /// a new request makes earlier codes for the address stop working.
    #[graphql(complexity = 25)]
    async fn request_otp(
        &self,
        ctx: &Context<'_>,
        input: RequestOtpInput,
    ) -> async_graphql::Result<OtpChallenge> {
        let (auth, request) = parts(ctx)?;
        auth.request_otp(&request.tenant, &input.email, &request.origin)
            .await
            .gql()
            .map(OtpChallenge::from)
    }

    /// Sign in with a mailed code, creating the account on first use. A wrong code counts
    /// against the challenge; after the tenant's `maxLoginAttempts` it stops working.
    #[graphql(complexity = 50)]
    async fn verify_otp(
        &self,
        ctx: &Context<'_>,
        input: VerifyOtpInput,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, request) = parts(ctx)?;
        auth.verify_otp(
            &request.tenant,
            &input.email,
            &input.challenge_id,
            &input.code,
            &request.origin,
        )
        .await
        .gql()
        .map(AuthPayload)
    }

    /// Mail a password-reset link (valid one hour) if the address has an account; answers
    /// `true` either way.
    #[graphql(complexity = 25)]
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        auth.request_password_reset(&request.tenant, &email, &request.origin)
            .await
            .gql()
            .map(|()| true)
    }

    /// Set a new password with the secret from a reset mail. Every session of the account
    /// ends; the answer is a new one.
    #[graphql(complexity = 50)]
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        input: ResetPasswordInput,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, request) = parts(ctx)?;
        spend_hashes(ctx, 1)?;
        auth.reset_password(
            &request.tenant,
            &input.token,
            &input.new_password,
            &request.origin,
        )
        .await
        .gql()
        .map(AuthPayload)
    }

    /// Exchange a refresh token for a new pair. The same token presented again within
    /// `AUTH_REFRESH_GRACE_SECONDS` gets the same pair; after that it revokes the session.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, request) = parts(ctx)?;
        auth.refresh(&request.tenant, &refresh_token, &request.origin)
            .await
            .gql()
            .map(AuthPayload)
    }

    /// End the caller's session.
    #[graphql(guard = "Access::User")]
    async fn sign_out(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        auth.sign_out(&request.tenant, caller(ctx).await?, &request.origin)
            .await
            .gql()?;
        Ok(true)
    }

    /// Revoke one of the caller's sessions.
    #[graphql(guard = "Access::User")]
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        auth.revoke_session(&request.tenant, caller(ctx).await?, &id, &request.origin)
            .await
            .gql()?;
        Ok(true)
    }

    /// Revoke all the caller's sessions, this one included; returns how many there were.
    #[graphql(guard = "Access::User")]
    async fn revoke_all_sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        let (auth, request) = parts(ctx)?;
        auth.revoke_all_sessions(&request.tenant, caller(ctx).await?, &request.origin)
            .await
            .gql()
    }

    /// Change the caller's password, given the current one. The caller's other sessions end;
    /// this one goes on.
    #[graphql(guard = "Access::User", complexity = 50)]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        spend_hashes(ctx, 2)?;
        auth.change_password(
            &request.tenant,
            caller(ctx).await?,
            &input.current_password,
            &input.new_password,
            &request.origin,
        )
        .await
        .gql()?;
        Ok(true)
    }

    /// Delete the caller's account, with its addresses and sessions; its tokens stop working
    /// everywhere at once.
    #[graphql(guard = "Access::User")]
    async fn delete_account(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        auth.delete_account(&request.tenant, caller(ctx).await?, &request.origin)
            .await
            .gql()?;
        Ok(true)
    }

    /// Delete a user of the tenant (admin); their tokens stop working everywhere at once.
    #[graphql(guard = "Access::Admin")]
    async fn admin_delete_user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        auth.delete_user(&request.tenant, caller(ctx).await?, &id, &request.origin)
            .await
            .gql()?;
        Ok(true)
    }

    /// End every session of a user of the tenant (admin); returns how many were active.
    #[graphql(guard = "Access::Admin")]
    async fn admin_revoke_sessions(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<u64> {
        let (auth, request) = parts(ctx)?;
        auth.admin_revoke_sessions(
            &request.tenant,
            caller(ctx).await?,
            &user_id,
            &request.origin,
        )
        .await
        .gql()
    }

    /// Create a machine token (admin). Its secret is in the answer and nowhere else, ever. A
    /// caller grants only scopes it holds: an admin user its tenant's `admin`,
    /// `connections` and `verify`; a machine token its own; anything else is `FORBIDDEN`.
    #[graphql(guard = "Access::Admin")]
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        input: CreateApiTokenInput,
    ) -> async_graphql::Result<CreatedApiToken> {
        let (auth, request) = parts(ctx)?;
        let scopes = input
            .scopes
            .iter()
            .map(|s| Scope::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(service::Error::from)
            .gql()?;
        let created = auth
            .create_api_token(
                &request.tenant,
                Some(caller(ctx).await?),
                &input.name,
                &scopes,
                input.expires_at.map(|at| at.0),
                &request.origin,
            )
            .await
            .gql()?;
        Ok(CreatedApiToken {
            secret: created.secret,
            token: created.token,
        })
    }

    /// Delete a machine token (admin); verifiers stop accepting it at once.
    #[graphql(guard = "Access::Admin")]
    async fn delete_api_token(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        auth.delete_api_token(&request.tenant, caller(ctx).await?, &id, &request.origin)
            .await
            .gql()?;
        Ok(true)
    }

    /// Create a tenant (machine token with scope `platform`).
    #[graphql(guard = "Access::Scope(Scope::Platform)")]
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        input: CreateTenantInput,
    ) -> async_graphql::Result<Tenant> {
        let (auth, request) = parts(ctx)?;
        auth.create_tenant(
            caller(ctx).await?,
            &input.slug,
            &input.name,
            &request.origin,
        )
        .await
        .gql()
        .map(Tenant)
    }

    /// Delete a tenant and everything it owns (scope `platform`); `default` cannot be deleted.
    #[graphql(guard = "Access::Scope(Scope::Platform)")]
    async fn delete_tenant(&self, ctx: &Context<'_>, slug: String) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        auth.delete_tenant(caller(ctx).await?, &slug, &request.origin)
            .await
            .gql()?;
        Ok(true)
    }
}
