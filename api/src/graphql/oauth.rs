//! OAuth2 / OpenID Connect operations: provider configuration (admin), the sign-in flow,
//! native id_token sign-in, and connections.

use async_graphql::{Context, Object};

use super::guard::Access;
use super::types::{
    AuthPayload, CompleteOAuthInput, Connection, ConnectionTokens, DateTime, IdTokenInput,
    OAuthStart, ProviderConfig, ProviderInput, StartOAuthInput,
};
use super::{GqlResultExt, caller, parts};
use crate::domain::{Endpoints, Scope};
use crate::service::{CompleteOAuth, ProviderSpec};

/// Provider and connection queries.
#[derive(Default)]
pub struct OAuthQuery;

#[Object]
impl OAuthQuery {
    /// The tenant's providers (admin); client secrets are never returned.
    #[graphql(guard = "Access::Admin")]
    async fn providers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ProviderConfig>> {
        let (auth, request) = parts(ctx)?;
        let all = auth.providers(&request.tenant).await.gql()?;
        Ok(all.into_iter().map(ProviderConfig).collect())
    }

    /// The signed-in user's linked providers, without tokens.
    #[graphql(guard = "Access::User")]
    async fn connections(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Connection>> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        let all = auth.connections(&request.tenant, caller).await.gql()?;
        Ok(all.into_iter().map(Connection).collect())
    }

    /// A user's provider tokens, fresh (refreshed first when the access token has run
    /// out), for a backend: machine tokens with scope `connections` only.
    #[graphql(guard = "Access::Scope(Scope::Connections)", complexity = 25)]
    async fn connection_tokens(
        &self,
        ctx: &Context<'_>,
        user_id: async_graphql::ID,
        provider: String,
    ) -> async_graphql::Result<Option<ConnectionTokens>> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        let tokens = auth
            .connection_tokens(
                &request.tenant,
                caller,
                &user_id,
                &provider,
                &request.origin,
            )
            .await
            .gql()?;
        Ok(Some(ConnectionTokens {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: tokens.expires_at.map(DateTime),
            scopes: tokens.scopes,
        }))
    }
}

/// Provider and sign-in mutations.
#[derive(Default)]
pub struct OAuthMutation;

#[Object]
impl OAuthMutation {
    /// Create or replace a provider (admin). URLs must be https and public unless
    /// `AUTH_OAUTH_ALLOW_LOOPBACK`; the client secret is sealed and never returned.
    #[graphql(guard = "Access::Admin")]
    async fn upsert_provider(
        &self,
        ctx: &Context<'_>,
        input: ProviderInput,
    ) -> async_graphql::Result<ProviderConfig> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        let spec = ProviderSpec {
            name: input.name,
            kind: Some(input.kind.into()),
            display_name: input.display_name,
            issuer: input.issuer,
            endpoints: Endpoints {
                authorization: input.authorization_url,
                token: input.token_url,
                userinfo: input.userinfo_url,
                revocation: input.revocation_url,
                jwks: input.jwks_url,
            },
            client_id: input.client_id,
            extra_client_ids: input.extra_client_ids.unwrap_or_default(),
            client_secret: input.client_secret,
            team_id: input.team_id,
            key_id: input.key_id,
            scopes: input.scopes,
            redirect_urls: input.redirect_urls,
            enabled: input.enabled,
        };
        auth.upsert_provider(&request.tenant, caller, spec)
            .await
            .gql()
            .map(ProviderConfig)
    }

    /// Delete a provider and its connections (admin).
    #[graphql(guard = "Access::Admin")]
    async fn delete_provider(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.delete_provider(&request.tenant, caller, &name)
            .await
            .gql()?;
        Ok(true)
    }

    /// Start a provider sign-in: where to send the person, and the state to expect back.
    async fn start_o_auth(
        &self,
        ctx: &Context<'_>,
        input: StartOAuthInput,
    ) -> async_graphql::Result<OAuthStart> {
        let (auth, request) = parts(ctx)?;
        let start = auth
            .start_oauth(
                &request.tenant,
                &input.provider,
                &input.redirect_url,
                input.scopes,
            )
            .await
            .gql()?;
        Ok(OAuthStart {
            authorization_url: start.authorization_url,
            state: start.state,
        })
    }

    /// Finish a provider sign-in with the code and state the provider sent back.
    #[graphql(complexity = 25)]
    async fn complete_o_auth(
        &self,
        ctx: &Context<'_>,
        input: CompleteOAuthInput,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, request) = parts(ctx)?;
        auth.complete_oauth(
            &request.tenant,
            CompleteOAuth {
                provider: &input.provider,
                code: &input.code,
                state: &input.state,
                redirect_url: &input.redirect_url,
                upsert_connection: input.upsert_connection,
                user: input.user.as_deref(),
            },
            &request.origin,
        )
        .await
        .gql()
        .map(AuthPayload)
    }

    /// Sign in with a provider's id_token (native Google or Apple sign-in).
    #[graphql(complexity = 25)]
    async fn sign_in_with_id_token(
        &self,
        ctx: &Context<'_>,
        input: IdTokenInput,
    ) -> async_graphql::Result<AuthPayload> {
        let (auth, request) = parts(ctx)?;
        auth.sign_in_with_id_token(
            &request.tenant,
            &input.provider,
            &input.id_token,
            &input.nonce,
            &request.origin,
        )
        .await
        .gql()
        .map(AuthPayload)
    }

    /// Link a provider account to the signed-in user (the code and state of a flow started
    /// with `startOAuth`): its tokens stored as a connection. `CONFLICT` when the account is
    /// another user's.
    #[graphql(guard = "Access::User", complexity = 25)]
    async fn link_connection(
        &self,
        ctx: &Context<'_>,
        input: CompleteOAuthInput,
    ) -> async_graphql::Result<Connection> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.link_connection(
            &request.tenant,
            caller,
            CompleteOAuth {
                provider: &input.provider,
                code: &input.code,
                state: &input.state,
                redirect_url: &input.redirect_url,
                upsert_connection: true,
                user: input.user.as_deref(),
            },
            &request.origin,
        )
        .await
        .gql()
        .map(Connection)
    }

    /// Remove a connection: its tokens revoked at the provider (RFC 7009, where it has a
    /// revocation endpoint), then deleted.
    #[graphql(guard = "Access::User", complexity = 25)]
    async fn unlink_connection(
        &self,
        ctx: &Context<'_>,
        provider: String,
    ) -> async_graphql::Result<bool> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.unlink_connection(&request.tenant, caller, &provider, &request.origin)
            .await
            .gql()?;
        Ok(true)
    }

    /// Replace a connection's access token (a leaked one): a new one with the refresh
    /// token, the old one revoked at the provider. The answer carries no token.
    #[graphql(guard = "Access::User", complexity = 25)]
    async fn refresh_connection(
        &self,
        ctx: &Context<'_>,
        provider: String,
    ) -> async_graphql::Result<Connection> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.refresh_connection(&request.tenant, caller, &provider, &request.origin)
            .await
            .gql()
            .map(Connection)
    }
}
