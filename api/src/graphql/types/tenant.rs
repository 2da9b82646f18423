//! Tenants (what anyone may know of one before signing in is in `settings.rs`).

use async_graphql::{ID, InputObject, Object};

use super::DateTime;

/// A tenant.
pub struct Tenant(pub crate::domain::Tenant);

#[Object]
impl Tenant {
    /// Internal id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Slug: the `X-Tenant` header and the `tid` claim.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
}

/// `createTenant` input.
#[derive(InputObject)]
pub struct CreateTenantInput {
    /// Slug: 1-63 lower-case letters, digits or dashes.
    pub slug: String,
    /// Display name.
    pub name: String,
}
