//! Users: their name, addresses, roles and metadata.

use async_graphql::{Context, ID, Json, Object, SimpleObject};

use super::DateTime;
use crate::domain::{self, EmailState};
use crate::graphql::{GqlResultExt, parts};

/// A user of the tenant.
pub struct User(pub domain::User);

/// A person's name.
#[derive(SimpleObject)]
pub struct Name {
    /// First name.
    pub first: Option<String>,
    /// Last name.
    pub last: Option<String>,
    /// Display name.
    pub display: Option<String>,
}

/// An address waiting for its owner to confirm it.
#[derive(SimpleObject)]
pub struct PendingEmail {
    /// The address.
    pub email: String,
    /// When it was added.
    pub created_at: DateTime,
}

/// An address the user used to have.
#[derive(SimpleObject)]
pub struct PreviousEmail {
    /// The address.
    pub email: String,
    /// When it was added.
    pub created_at: DateTime,
}

/// A user's addresses.
#[derive(SimpleObject)]
pub struct Emails {
    /// The address mail goes to and the user signs in with.
    pub primary: Option<String>,
    /// Every confirmed address.
    pub active: Vec<String>,
    /// Addresses awaiting confirmation.
    pub pending: Vec<PendingEmail>,
    /// Addresses removed or replaced.
    pub previous: Vec<PreviousEmail>,
}

#[Object]
impl User {
    /// User id (the `sub` of their tokens).
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Name.
    async fn name(&self) -> Name {
        Name {
            first: self.0.name_first.clone(),
            last: self.0.name_last.clone(),
            display: self.0.name_display.clone(),
        }
    }
    /// Avatar: the user's own (a `data:` URL set with `updateProfile`), or the tenant's
    /// `branding.defaultAvatar` when they have none.
    async fn avatar(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        if let Some(own) = &self.0.avatar {
            return Ok(Some(own.clone()));
        }
        let (_, request) = parts(ctx)?;
        Ok((request.tenant.id == self.0.tenant_id)
            .then(|| request.tenant.settings.branding.default_avatar.clone())
            .flatten())
    }
    /// Addresses.
    async fn emails(&self, ctx: &Context<'_>) -> async_graphql::Result<Emails> {
        let (auth, _) = parts(ctx)?;
        let rows = auth.user_emails(&self.0).await.gql()?;
        let mut emails = Emails {
            primary: None,
            active: vec![],
            pending: vec![],
            previous: vec![],
        };
        for row in rows {
            match row.state {
                EmailState::Active => {
                    if row.is_primary {
                        emails.primary = Some(row.email.clone());
                    }
                    emails.active.push(row.email);
                }
                EmailState::Pending => emails.pending.push(PendingEmail {
                    email: row.email,
                    created_at: DateTime(row.created_at),
                }),
                EmailState::Previous => emails.previous.push(PreviousEmail {
                    email: row.email,
                    created_at: DateTime(row.created_at),
                }),
            }
        }
        Ok(emails)
    }
    /// Roles in the tenant (`admin`, …), as carried in access tokens.
    async fn roles(&self) -> &[String] {
        &self.0.roles
    }
    /// Free-form metadata.
    async fn metadata(&self) -> Json<serde_json::Value> {
        Json(self.0.metadata.clone())
    }
    /// Whether an admin disabled the account (it cannot sign in).
    async fn disabled(&self) -> bool {
        self.0.disabled_at.is_some()
    }
    /// When the account was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// Which second factors are on (never a secret).
    async fn mfa(&self, ctx: &Context<'_>) -> async_graphql::Result<super::MfaStatus> {
        let (auth, _) = parts(ctx)?;
        auth.mfa_status(&self.0).await.gql().map(Into::into)
    }
}
