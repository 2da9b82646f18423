//! Queries.

use async_graphql::{Context, ID, Object};

use super::guard::Access;
use super::types::{ApiToken, Session, Tenant, TenantInfo, User, sessions_for};
use super::{GqlResultExt, caller, parts};
use crate::domain::Scope;

/// Queries about the caller's own account and sessions, the tenant, and machine tokens.
#[derive(Default)]
pub struct CoreQuery;

#[Object]
impl CoreQuery {
    /// The signed-in user.
    #[graphql(guard = "Access::User")]
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.me(&request.tenant, caller).await.gql().map(User)
    }

    /// The signed-in user's active sessions, newest first.
    #[graphql(guard = "Access::User")]
    async fn sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Session>> {
        let (auth, request) = parts(ctx)?;
        let sessions = auth
            .sessions(&request.tenant, caller(ctx).await?)
            .await
            .gql()?;
        sessions_for(ctx, sessions).await
    }

    /// One of the signed-in user's sessions, revoked ones included; null for any other id.
    #[graphql(guard = "Access::User")]
    async fn session(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Session>> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        let session = auth.session(&request.tenant, caller, &id).await.gql()?;
        Ok(session.map(|s| Session::for_caller(s, caller)))
    }

    /// Public facts about the tenant (no token needed): name, branding, enabled sign-in
    /// methods and providers, whether sign-up is open. Nothing secret.
    async fn tenant_info(&self, ctx: &Context<'_>) -> async_graphql::Result<TenantInfo> {
        let (auth, request) = parts(ctx)?;
        let providers = auth.enabled_providers(&request.tenant).await.gql()?;
        let mut info = TenantInfo::of(&request.tenant);
        info.providers = providers.iter().map(|p| p.name.clone()).collect();
        info.sign_in_providers = providers.into_iter().map(Into::into).collect();
        Ok(info)
    }

    /// The tenant's machine tokens (admin).
    #[graphql(guard = "Access::Admin")]
    async fn api_tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiToken>> {
        let (auth, request) = parts(ctx)?;
        let tokens = auth.api_tokens(&request.tenant).await.gql()?;
        Ok(tokens.into_iter().map(ApiToken).collect())
    }

    /// Every tenant (machine token with scope `platform`).
    #[graphql(guard = "Access::Scope(Scope::Platform)")]
    async fn tenants(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Tenant>> {
        let (auth, _) = parts(ctx)?;
        let tenants = auth.tenants().await.gql()?;
        Ok(tenants.into_iter().map(Tenant).collect())
    }
}
