//! The GraphQL layer: resolvers only. Each reads the caller from the request context, calls
//! the service, and maps its errors; guards (who may call what) live in [`guard`], error
//! codes in [`error`].

pub mod error;
pub mod guard;
pub mod mutation;
pub mod query;
pub mod types;

use async_graphql::{Context, EmptySubscription, Schema};
use tokio::sync::OnceCell;

use crate::domain::Tenant;
use crate::service::{Auth, Caller, Origin};

pub use error::{ErrorCode, GqlResultExt};

/// The schema type.
pub type AuthSchema = Schema<query::Query, mutation::Mutation, EmptySubscription>;

/// Largest nesting depth of a query.
pub const MAX_DEPTH: usize = 16;
/// Largest complexity of a query; password operations cost 50 each, so one request holds at
/// most four of them however many aliases it uses.
pub const MAX_COMPLEXITY: usize = 250;

/// Build the schema over the service.
pub fn schema(auth: Option<Auth>, introspection: bool) -> AuthSchema {
    let mut builder = Schema::build(query::Query, mutation::Mutation, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY);
    if !introspection {
        builder = builder.disable_introspection();
    }
    if let Some(auth) = auth {
        builder = builder.data(auth);
    }
    builder.finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    schema(None, true).sdl()
}

/// What a request carries into the resolvers.
pub struct RequestContext {
    /// The tenant named by `X-Tenant`.
    pub tenant: Tenant,
    /// The bearer token, if any; checked on first use.
    pub bearer: Option<String>,
    /// Where the request comes from.
    pub origin: Origin,
    caller: OnceCell<Result<Caller, async_graphql::Error>>,
}

impl RequestContext {
    /// A context for one HTTP request.
    pub fn new(tenant: Tenant, bearer: Option<String>, origin: Origin) -> Self {
        Self {
            tenant,
            bearer,
            origin,
            caller: OnceCell::new(),
        }
    }
}

/// The service and the request context, as every resolver needs them.
pub(crate) fn parts<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<(&'a Auth, &'a RequestContext)> {
    Ok((ctx.data::<Auth>()?, ctx.data::<RequestContext>()?))
}

/// The caller, authenticated once per request; `UNAUTHENTICATED` without a bearer token.
pub(crate) async fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Caller> {
    let (auth, request) = parts(ctx)?;
    request
        .caller
        .get_or_init(|| async {
            let Some(bearer) = request.bearer.as_deref() else {
                return Err(error::coded(
                    ErrorCode::Unauthenticated,
                    "sign in first: send Authorization: Bearer <token>",
                ));
            };
            auth.authenticate(&request.tenant, bearer).await.gql()
        })
        .await
        .as_ref()
        .map_err(Clone::clone)
}
