//! Who may call what, in one place: resolvers declare `#[graphql(guard = "…")]`.

use async_graphql::{Context, Guard};

use super::error::{ErrorCode, coded};
use crate::domain::Scope;
use crate::service::Caller;

/// The access an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A signed-in user (not a machine token).
    User,
    /// An admin of the tenant: a user with role `admin`, or a machine token with scope `admin`.
    Admin,
    /// A machine token with this scope.
    Scope(Scope),
}

impl Guard for Access {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let caller = super::caller(ctx).await?;
        let allowed = match self {
            Access::User => matches!(caller, Caller::User { .. }),
            Access::Admin => caller.is_admin(),
            Access::Scope(scope) => caller.has_scope(*scope),
        };
        if allowed {
            return Ok(());
        }
        let why = match self {
            Access::User => "this operation needs a signed-in user".to_owned(),
            Access::Admin => "this operation needs an admin".to_owned(),
            Access::Scope(scope) => format!(
                "this operation needs a machine token with scope {}",
                scope.as_str()
            ),
        };
        Err(coded(ErrorCode::Forbidden, why))
    }
}
