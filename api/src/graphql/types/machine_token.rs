//! Machine tokens, listed without secrets, and the one answer that shows a secret.

use async_graphql::{ComplexObject, ID, InputObject, Object, SimpleObject};

use super::DateTime;
use crate::domain;

/// A machine token, without its secret.
pub struct ApiToken(pub domain::ApiToken);

#[Object]
impl ApiToken {
    /// Token id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Name given at creation.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Scopes: `admin`, `connections`, `platform`, `verify`.
    async fn scopes(&self) -> Vec<&'static str> {
        self.0.scopes.iter().map(|s| s.as_str()).collect()
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// Last time it authenticated a request (written at most once a minute per token).
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
    /// When it stops working; null: never.
    async fn expires_at(&self) -> Option<DateTime> {
        self.0.expires_at.map(DateTime)
    }
}

/// A machine token just created. The secret is shown this once and never again.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CreatedApiToken {
    /// The token's `mt_…` secret: store it now.
    pub secret: String,
    /// The token as stored (shown through the `token` field).
    #[graphql(skip)]
    pub token: domain::ApiToken,
}

#[ComplexObject]
impl CreatedApiToken {
    /// Token id.
    async fn id(&self) -> ID {
        ID(self.token.id.clone())
    }
    /// The token.
    async fn token(&self) -> ApiToken {
        ApiToken(self.token.clone())
    }
}

/// `createApiToken` input.
#[derive(InputObject)]
pub struct CreateApiTokenInput {
    /// A name to recognise it by.
    pub name: String,
    /// Scopes: `admin`, `connections`, `platform`, `verify`.
    pub scopes: Vec<String>,
    /// When it stops working (in the future); never when left out.
    pub expires_at: Option<DateTime>,
}
