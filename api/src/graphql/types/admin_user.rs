//! Users as admins page through and change them: the Relay connection of `users` and the
//! input of `adminUpdateUser`.

use async_graphql::{InputObject, Json, SimpleObject};

use super::{NameInput, User};
use crate::service::{AdminUserUpdate, UserPage};

/// Where a page ends (Relay).
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether more follow after `endCursor`.
    pub has_next_page: bool,
    /// Cursor of the last edge; pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// A user and its cursor.
#[derive(SimpleObject)]
pub struct UserEdge {
    /// Opaque cursor.
    pub cursor: String,
    /// The user.
    pub node: User,
}

/// A page of users, newest first.
#[derive(SimpleObject)]
pub struct UserConnection {
    /// The users.
    pub edges: Vec<UserEdge>,
    /// Where the page ends.
    pub page_info: PageInfo,
    /// How many users match in all (counted only when selected).
    pub total_count: i64,
}

impl From<UserPage> for UserConnection {
    fn from(page: UserPage) -> Self {
        let end_cursor = page.users.last().map(|(cursor, _)| cursor.clone());
        Self {
            edges: page
                .users
                .into_iter()
                .map(|(cursor, user)| UserEdge {
                    cursor,
                    node: User(user),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next,
                end_cursor,
            },
            // Not selected when not counted: never seen then.
            total_count: page.total.unwrap_or_default(),
        }
    }
}

/// What `adminUpdateUser` changes; absent fields stay as they are.
#[derive(InputObject)]
pub struct AdminUserInput {
    /// The name: a string (display name) or `{first, last, display}`.
    pub name: Option<NameInput>,
    /// Role slugs, replacing the user's (`admin` plus any the tenant uses); tokens carrying
    /// the old roles are refused at once, the next refresh carries the new ones.
    pub roles: Option<Vec<String>>,
    /// Metadata, replacing the user's; checked against the tenant's `metadataSchema`.
    pub metadata: Option<Json<serde_json::Value>>,
    /// `true` ends every session at once and refuses sign-in (`FORBIDDEN`, "account
    /// disabled", once the credentials are right); `false` lets the user in again.
    pub disabled: Option<bool>,
    /// The active addresses, primary first; others become previous ones, new ones count as
    /// proven (the admin vouches for them). `CONFLICT` when another account holds one.
    pub emails: Option<Vec<String>>,
}

impl AdminUserInput {
    /// The service's form of the input.
    pub fn into_update(self) -> AdminUserUpdate {
        AdminUserUpdate {
            name: self.name.map(|n| n.0),
            roles: self.roles,
            metadata: self.metadata.map(|m| m.0),
            disabled: self.disabled,
            emails: self.emails,
        }
    }
}
