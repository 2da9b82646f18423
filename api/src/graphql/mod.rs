//! The GraphQL layer: resolvers only. Each reads the caller from the request context, calls
//! the service, and maps its errors; guards (who may call what) live in [`guard`], error
//! codes in [`error`].

pub mod admin;
pub mod error;
pub mod events;
pub mod guard;
pub mod mfa;
pub mod mutation;
pub mod oauth;
pub mod passkeys;
pub mod profile;
pub mod query;
pub mod types;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::{Context, MergedObject, MergedSubscription, Schema};
use tokio::sync::OnceCell;

use crate::domain::Device;
use crate::domain::Tenant;
use crate::service::{Auth, Caller};

pub use error::{ErrorCode, GqlResultExt};

/// The root query: each area's queries, merged (one module per area).
#[derive(MergedObject, Default)]
pub struct Query(
    query::CoreQuery,
    profile::ProfileQuery,
    admin::AdminQuery,
    oauth::OAuthQuery,
    passkeys::PasskeyQuery,
);

/// The root mutation: each area's mutations, merged (one module per area).
#[derive(MergedObject, Default)]
pub struct Mutation(
    mutation::CoreMutation,
    profile::ProfileMutation,
    admin::AdminMutation,
    oauth::OAuthMutation,
    mfa::MfaMutation,
    passkeys::PasskeyMutation,
);

/// The root subscription: each area's subscriptions, merged (one module per area).
#[derive(MergedSubscription, Default)]
pub struct Subscription(events::EventsSubscription);

/// The schema type.
pub type AuthSchema = Schema<Query, Mutation, Subscription>;

/// Largest nesting depth of a query.
pub const MAX_DEPTH: usize = 16;
/// Largest complexity of a query; password operations cost 50 each, so one operation holds at
/// most four of them however many aliases it uses ([`MAX_PASSWORD_HASHES`] holds the whole
/// request, batch included, to four hashes).
pub const MAX_COMPLEXITY: usize = 250;

/// Build the schema over the service.
pub fn schema(auth: Option<Auth>, introspection: bool) -> AuthSchema {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY);
    if !introspection {
        // "Did you mean …" names real fields: a schema leak when introspection is off.
        builder = builder.disable_introspection().disable_suggestions();
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

/// Most password hashes (sign-up, sign-in, reset, change) one HTTP request may run, however
/// it is shaped: aliases within an operation and the items of a batch share the budget.
pub const MAX_PASSWORD_HASHES: usize = 4;

/// The password hashes one HTTP request may still run, shared by the operations of a batch.
#[derive(Debug, Clone, Default)]
pub struct HashBudget(Arc<AtomicUsize>);

impl HashBudget {
    /// Take `hashes` from the budget, or refuse with `BAD_USER_INPUT` when it cannot cover
    /// them (nothing taken then).
    fn spend(&self, hashes: usize) -> async_graphql::Result<()> {
        let spent = self.0.fetch_add(hashes, Ordering::AcqRel);
        if spent + hashes <= MAX_PASSWORD_HASHES {
            return Ok(());
        }
        self.0.fetch_sub(hashes, Ordering::AcqRel);
        Err(error::coded(
            ErrorCode::BadUserInput,
            format!(
                "one request may check at most {MAX_PASSWORD_HASHES} passwords, aliases and \
                 batched operations together; send the rest in another request"
            ),
        ))
    }
}

/// What a request carries into the resolvers.
pub struct RequestContext {
    /// The tenant named by `X-Tenant`.
    pub tenant: Tenant,
    /// The bearer token, if any; checked on first use.
    pub bearer: Option<String>,
    /// Where the request comes from.
    pub origin: Device,
    hashes: HashBudget,
    caller: OnceCell<Result<Caller, async_graphql::Error>>,
}

impl RequestContext {
    /// A context for one operation of an HTTP request; every operation of the request gets
    /// a clone of the same `hashes`.
    pub fn new(tenant: Tenant, bearer: Option<String>, origin: Device, hashes: HashBudget) -> Self {
        Self {
            tenant,
            bearer,
            origin,
            hashes,
            caller: OnceCell::new(),
        }
    }
}

/// Take `hashes` password hashes from the request's budget before an operation that runs
/// them; `BAD_USER_INPUT` when the request has used up its [`MAX_PASSWORD_HASHES`].
pub(crate) fn spend_hashes(ctx: &Context<'_>, hashes: usize) -> async_graphql::Result<()> {
    ctx.data::<RequestContext>()?.hashes.spend(hashes)
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
