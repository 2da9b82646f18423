//! Tenants, and what anyone may know of one before signing in.

use async_graphql::{ID, InputObject, Object, SimpleObject};

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

/// What anyone may know about the tenant before signing in.
#[derive(SimpleObject)]
pub struct TenantInfo {
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Enabled sign-in methods.
    pub sign_in_methods: Vec<String>,
}

/// `createTenant` input.
#[derive(InputObject)]
pub struct CreateTenantInput {
    /// Slug: 1-63 lower-case letters, digits or dashes.
    pub slug: String,
    /// Display name.
    pub name: String,
}
