//! The profile area: `updateProfile`, the address mutations and `user` (public profiles).

use async_graphql::{Context, Object};

use super::guard::Access;
use super::types::{PublicUser, UpdateProfileInput, User, VerifyEmailInput};
use super::{GqlResultExt, caller, parts};

/// Other users' public profiles.
#[derive(Default)]
pub struct ProfileQuery;

#[Object]
impl ProfileQuery {
    /// Another user of the tenant by id or by an active address: id, name and avatar only;
    /// null when there is none.
    #[graphql(guard = "Access::User")]
    async fn user(
        &self,
        ctx: &Context<'_>,
        id_or_email: String,
    ) -> async_graphql::Result<Option<PublicUser>> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        let found = auth
            .public_user(&request.tenant, caller, &id_or_email)
            .await
            .gql()?;
        Ok(found.map(PublicUser::from))
    }
}

/// The signed-in user's profile and addresses.
#[derive(Default)]
pub struct ProfileMutation;

#[Object]
impl ProfileMutation {
    /// Change the name, avatar or metadata; what is not given stays.
    #[graphql(guard = "Access::User")]
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateProfileInput,
    ) -> async_graphql::Result<User> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.update_profile(
            &request.tenant,
            caller,
            input.into_update(),
            &request.origin,
        )
        .await
        .gql()
        .map(User)
    }

    /// Add an address: pending until the code mailed to it comes back through
    /// `verifyEmail`. `CONFLICT` when another account of the tenant uses it.
    #[graphql(guard = "Access::User", complexity = 25)]
    async fn add_email(&self, ctx: &Context<'_>, email: String) -> async_graphql::Result<User> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.add_email(&request.tenant, caller, &email, &request.origin)
            .await
            .gql()
            .map(User)
    }

    /// Confirm a pending address with the code mailed to it; it becomes active.
    #[graphql(guard = "Access::User", complexity = 25)]
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        input: VerifyEmailInput,
    ) -> async_graphql::Result<User> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.verify_email(
            &request.tenant,
            caller,
            &input.email,
            &input.code,
            &request.origin,
        )
        .await
        .gql()
        .map(User)
    }

    /// Remove an address (not the primary one); an active one is remembered as previous.
    #[graphql(guard = "Access::User")]
    async fn remove_email(&self, ctx: &Context<'_>, email: String) -> async_graphql::Result<User> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.remove_email(&request.tenant, caller, &email, &request.origin)
            .await
            .gql()
            .map(User)
    }

    /// Make an active address the primary one.
    #[graphql(guard = "Access::User")]
    async fn set_primary_email(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<User> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.set_primary_email(&request.tenant, caller, &email, &request.origin)
            .await
            .gql()
            .map(User)
    }
}
