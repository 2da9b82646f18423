//! The tenant's administration: settings, users, the audit log. Every operation here goes
//! through the one admin guard ([`Access::Admin`]: a user with role `admin`, or a machine
//! token with scope `admin`, of this tenant).

use async_graphql::{Context, Object};

use super::guard::Access;
use super::types::{Settings, SettingsInput};
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
}
