//! The tenant's administration: settings, users, the audit log. Every operation here goes
//! through the one admin guard ([`Access::Admin`]: a user with role `admin`, or a machine
//! token with scope `admin`, of this tenant).

use async_graphql::{Context, ID, Object};

use super::guard::Access;
use super::types::{
    AdminUserInput, AuditEventConnection, Settings, SettingsInput, User, UserConnection,
};
use super::{GqlResultExt, caller, parts};

/// Admin queries.
#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// The tenant's settings (admin).
    #[graphql(guard = "Access::Admin")]
    async fn settings(&self, ctx: &Context<'_>) -> async_graphql::Result<Settings> {
        let (auth, request) = parts(ctx)?;
        auth.settings(&request.tenant)
            .await
            .gql()
            .map(Settings::from)
    }

    /// The tenant's users, newest first (admin): `first` (default 20, at most 100) after the
    /// cursor `after`; `search` matches part of an active address or of the name,
    /// case-insensitively. Keyset pages: users signing up meanwhile do not shift them.
    #[graphql(guard = "Access::Admin")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i64>,
        after: Option<String>,
        search: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let (auth, request) = parts(ctx)?;
        // The count only when the query selects it (through a fragment too).
        let count = ctx.look_ahead().field("totalCount").exists();
        auth.users(
            &request.tenant,
            first,
            after.as_deref(),
            search.as_deref(),
            count,
        )
        .await
        .gql()
        .map(UserConnection::from)
    }

    /// A user of the tenant by id or active address (admin); null when there is none.
    #[graphql(guard = "Access::Admin")]
    async fn admin_user(
        &self,
        ctx: &Context<'_>,
        id_or_email: String,
    ) -> async_graphql::Result<Option<User>> {
        let (auth, request) = parts(ctx)?;
        let user = auth.admin_user(&request.tenant, &id_or_email).await.gql()?;
        Ok(user.map(User))
    }

    /// The tenant's audit log, newest first (admin): `first` (default 20, at most 100)
    /// after the cursor `after`, only `action` (e.g. `user.sign_in`) and only events about
    /// `userId` when given. Keyset pages: events written meanwhile do not shift them.
    #[graphql(guard = "Access::Admin")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i64>,
        after: Option<String>,
        action: Option<String>,
        user_id: Option<ID>,
    ) -> async_graphql::Result<AuditEventConnection> {
        let (auth, request) = parts(ctx)?;
        auth.audit_log(
            &request.tenant,
            first,
            after.as_deref(),
            action.as_deref(),
            user_id.as_ref().map(|id| id.as_str()),
        )
        .await
        .gql()
        .map(AuditEventConnection::from)
    }
}

/// Admin mutations.
#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Change the tenant's settings (admin): fields left out keep their value, `null` resets
    /// one to its default. Everything is checked first; a bad value is `BAD_USER_INPUT` with
    /// `extensions.field` naming it (`branding.primaryColor`, `templates.signup.html`) and
    /// nothing changed. Every replica applies the new settings within a second.
    #[graphql(guard = "Access::Admin")]
    async fn update_settings(
        &self,
        ctx: &Context<'_>,
        input: SettingsInput,
    ) -> async_graphql::Result<Settings> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.update_settings(&request.tenant, caller, input.into_patch(), &request.origin)
            .await
            .gql()
            .map(Settings::from)
    }

    /// Change a user of the tenant (admin): name, roles, metadata, disabled, addresses. All
    /// is checked first and written with its audit events in one transaction; `NOT_FOUND`
    /// for anyone outside the tenant.
    #[graphql(guard = "Access::Admin")]
    async fn admin_update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: AdminUserInput,
    ) -> async_graphql::Result<User> {
        let (auth, request) = parts(ctx)?;
        let caller = caller(ctx).await?;
        auth.admin_update_user(
            &request.tenant,
            caller,
            &id,
            input.into_update(),
            &request.origin,
        )
        .await
        .gql()
        .map(User)
    }
}
