//! Users and their email addresses.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, StoreResult, conflict_on_unique, json_column, some_row};
use crate::domain::{Email, Millis, new_id, now_ms};

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// User id (`sub`).
    pub id: String,
    /// Tenant the user belongs to.
    pub tenant_id: String,
    /// argon2id PHC string; `None` for accounts without a password.
    pub password_hash: Option<String>,
    /// First name.
    pub name_first: Option<String>,
    /// Last name.
    pub name_last: Option<String>,
    /// Display name.
    pub name_display: Option<String>,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// Free-form metadata.
    pub metadata: serde_json::Value,
    /// Roles in the tenant.
    pub roles: Vec<String>,
    /// Access tokens issued at or before this second are revoked.
    pub tokens_valid_after: i64,
    /// Creation time.
    pub created_at: Millis,
}

/// One address of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEmail {
    /// The normalised address.
    pub email: String,
    /// `active`, `pending` or `previous`.
    pub state: String,
    /// Whether this is the primary address.
    pub is_primary: bool,
    /// When it was added.
    pub created_at: Millis,
}

/// What a new user starts with.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Primary, verified-by-ownership address.
    pub email: &'a Email,
    /// argon2id PHC string, if the account has a password.
    pub password_hash: Option<String>,
    /// Display name.
    pub name_display: Option<String>,
    /// Initial roles.
    pub roles: Vec<String>,
}

macro_rules! user_columns {
    () => {
        "u.id, u.tenant_id, u.password_hash, u.name_first, u.name_last, u.name_display, \
         u.avatar, u.metadata, u.roles, u.tokens_valid_after, u.created_at"
    };
}

fn user(row: &AnyRow) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        password_hash: row.try_get("password_hash")?,
        name_first: row.try_get("name_first")?,
        name_last: row.try_get("name_last")?,
        name_display: row.try_get("name_display")?,
        avatar: row.try_get("avatar")?,
        metadata: json_column(&row.try_get::<String, _>("metadata")?),
        roles: json_column(&row.try_get::<String, _>("roles")?),
        tokens_valid_after: row.try_get("tokens_valid_after")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Create a user with a primary address; `Conflict("email")` when the address is taken
    /// in the tenant. Nothing is written on failure.
    pub async fn create_user(&self, tenant_id: &str, new: NewUser<'_>) -> StoreResult<User> {
        let now = now_ms();
        let user = User {
            id: new_id(),
            tenant_id: tenant_id.to_owned(),
            password_hash: new.password_hash,
            name_first: None,
            name_last: None,
            name_display: new.name_display,
            avatar: None,
            metadata: serde_json::json!({}),
            roles: new.roles,
            tokens_valid_after: 0,
            created_at: now,
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, password_hash, name_display, metadata, roles, \
             tokens_valid_after, created_at, updated_at) VALUES ($1, $2, $3, $4, '{}', $5, 0, $6, $6)",
        )
        .bind(&user.id)
        .bind(tenant_id)
        .bind(&user.password_hash)
        .bind(&user.name_display)
        .bind(serde_json::to_string(&user.roles).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO user_emails (id, tenant_id, user_id, email, state, is_primary, created_at, verified_at) \
             VALUES ($1, $2, $3, $4, 'active', 1, $5, $5)",
        )
        .bind(new_id())
        .bind(tenant_id)
        .bind(&user.id)
        .bind(new.email.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique("email"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user holding this active address in the tenant.
    pub async fn user_by_email(&self, tenant_id: &str, email: &Email) -> StoreResult<Option<User>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u JOIN user_emails e ON e.user_id = u.id \
             WHERE e.tenant_id = $1 AND e.email = $2 AND e.state = 'active'"
        ))
        .bind(tenant_id)
        .bind(email.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user).transpose()
    }

    /// The user with this id in the tenant.
    pub async fn user_by_id(&self, tenant_id: &str, id: &str) -> StoreResult<User> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.tenant_id = $1 AND u.id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        user(&row)
    }

    /// Every address of a user, primary first.
    pub async fn user_emails(&self, tenant_id: &str, user_id: &str) -> StoreResult<Vec<UserEmail>> {
        let rows = sqlx::query(
            "SELECT email, state, is_primary, created_at FROM user_emails \
             WHERE tenant_id = $1 AND user_id = $2 ORDER BY is_primary DESC, created_at",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UserEmail {
                    email: row.try_get("email")?,
                    state: row.try_get("state")?,
                    is_primary: row.try_get::<i64, _>("is_primary")? != 0,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Replace a user's roles.
    pub async fn set_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
        roles: &[String],
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET roles = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(serde_json::to_string(roles).unwrap_or_else(|_| "[]".into()))
        .bind(now_ms())
        .bind(tenant_id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replace the user's password hash.
    pub async fn set_password_hash(
        &self,
        tenant_id: &str,
        user_id: &str,
        password_hash: &str,
    ) -> StoreResult<()> {
        some_row(sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(password_hash)
        .bind(now_ms())
        .bind(tenant_id)
        .bind(user_id)
        .execute(self.pool()).await?)
    }

    /// Delete a user with everything that hangs off it (addresses, sessions, refresh tokens,
    /// challenges: `ON DELETE CASCADE`). Audit events stay; they name the user by id only.
    pub async fn delete_user(&self, tenant_id: &str, user_id: &str) -> StoreResult<()> {
        some_row(
            sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .execute(self.pool())
                .await?,
        )
    }

    /// Raise the user's token cut-off to `second` (never lowers it): access tokens issued at
    /// or before it are revoked.
    pub async fn cut_off_user_tokens(
        &self,
        tenant_id: &str,
        user_id: &str,
        second: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET tokens_valid_after = $1 WHERE tenant_id = $2 AND id = $3 AND tokens_valid_after < $1",
        )
        .bind(second)
        .bind(tenant_id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
