//! The passkey area: the signed-in user's passkeys (`passkeys`, register, rename, delete)
//! and the passwordless sign-in with one (`startPasskeySignIn`, `finishPasskeySignIn`).

use async_graphql::{Context, ID, Json, Object};

use super::guard::Access;
use super::types::{
    AuthPayload, Passkey, PasskeyChallenge, PasskeyOptions, PasskeyRegistrationInput,
    PasskeySignInInput,
};
use super::{GqlResultExt, caller, parts};

/// The signed-in user's passkeys.
#[derive(Default)]
pub struct PasskeyQuery;

#[Object]
impl PasskeyQuery {
    /// The signed-in user's passkeys, oldest first.
    #[graphql(guard = "Access::User")]
    async fn passkeys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Passkey>> {
        let (auth, request) = parts(ctx)?;
        let found = auth
            .passkeys(&request.tenant, caller(ctx).await?)
            .await
            .gql()?;
        Ok(found.into_iter().map(Passkey).collect())
    }
}

/// Registering, renaming and deleting passkeys, and signing in with one.
#[derive(Default)]
pub struct PasskeyMutation;

#[Object]
impl PasskeyMutation {
    /// Start registering a passkey: WebAuthn creation options for a discoverable credential
    /// (resident key required, user verification), excluding the user's passkeys.
    #[graphql(guard = "Access::User", complexity = 10)]
    async fn start_passkey_registration(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<PasskeyOptions> {
        let (auth, request) = parts(ctx)?;
        let options = auth
            .start_passkey_registration(&request.tenant, caller(ctx).await?, &request.origin)
            .await
            .gql()?;
        Ok(PasskeyOptions {
            options: Json(options),
        })
    }

    /// Finish a registration with the browser's new credential; the owner is told by mail.
    #[graphql(guard = "Access::User", complexity = 25)]
    async fn finish_passkey_registration(
        &self,
        ctx: &Context<'_>,
        input: PasskeyRegistrationInput,
    ) -> async_graphql::Result<Passkey> {
        let (auth, request) = parts(ctx)?;
        auth.finish_passkey_registration(
            &request.tenant,
            caller(ctx).await?,
            &input.name,
            input.credential.0,
            &request.origin,
        )
        .await
        .gql()
        .map(Passkey)
    }

    /// Start a passkey sign-in: no user named, an empty `allowCredentials`.
    #[graphql(complexity = 10)]
    async fn start_passkey_sign_in(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<PasskeyChallenge> {
        let (auth, request) = parts(ctx)?;
        let (challenge_id, options) = auth
            .start_passkey_sign_in(&request.tenant, &request.origin)
            .await
            .gql()?;
        Ok(PasskeyChallenge {
            challenge_id: ID(challenge_id),
            options: Json(options),
        })
    }

    /// Finish a passkey sign-in with the browser's assertion: a new session (method
    /// `passkey`). Each challenge answers once.
    #[graphql(complexity = 25)]
    async fn finish_passkey_sign_in(
        &self,
        ctx: &Context<'_>,
        input: PasskeySignInInput,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, request) = parts(ctx)?;
        auth.finish_passkey_sign_in(
            &request.tenant,
            &input.challenge_id,
            input.credential.0,
            &request.origin,
        )
        .await
        .gql()
        .map(AuthPayload)
    }

    /// Rename one of the user's passkeys.
    #[graphql(guard = "Access::User")]
    async fn rename_passkey(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: String,
    ) -> async_graphql::Result<Passkey> {
        let (auth, request) = parts(ctx)?;
        auth.rename_passkey(
            &request.tenant,
            caller(ctx).await?,
            &id,
            &name,
            &request.origin,
        )
        .await
        .gql()
        .map(Passkey)
    }

    /// Delete one of the user's passkeys: it never signs in again. The owner is told by
    /// mail.
    #[graphql(guard = "Access::User")]
    async fn delete_passkey(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        auth.delete_passkey(&request.tenant, caller(ctx).await?, &id, &request.origin)
            .await
            .gql()
    }
}
