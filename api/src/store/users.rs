//! Users and their email addresses.

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::sessions::{Revoking, end_user_sessions};
use super::{Store, StoreError, StoreResult, conflict_on_unique, json_column, some_row};
use crate::domain::{Email, EmailState, User, UserEmail, new_id, now_ms};

/// A user found by one of their active addresses, and whether that address is proven.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailOwner {
    /// The user.
    pub user: User,
    /// Whether the address was proven through our own mail (a code or a reset link).
    pub verified: bool,
}

/// What a new user starts with.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Primary address.
    pub email: &'a Email,
    /// Whether the address is proven already (a code sign-up), or not (a password sign-up).
    pub verified: bool,
    /// argon2id PHC string, if the account has a password.
    pub password_hash: Option<String>,
    /// Display name.
    pub name_display: Option<String>,
    /// Initial roles.
    pub roles: Vec<String>,
    /// Those of `roles` granted by configuration.
    pub configured_roles: Vec<String>,
}

macro_rules! user_columns {
    () => {
        "u.id, u.tenant_id, u.password_hash, u.name_first, u.name_last, u.name_display, \
         u.avatar, u.metadata, u.roles, u.configured_roles, u.tokens_valid_after, u.created_at"
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
        configured_roles: json_column(&row.try_get::<String, _>("configured_roles")?),
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
            configured_roles: new.configured_roles,
            tokens_valid_after: 0,
            created_at: now,
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, password_hash, name_display, metadata, roles, \
             configured_roles, tokens_valid_after, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, '{}', $5, $6, 0, $7, $7)",
        )
        .bind(&user.id)
        .bind(tenant_id)
        .bind(&user.password_hash)
        .bind(&user.name_display)
        .bind(json_text(&user.roles))
        .bind(json_text(&user.configured_roles))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO user_emails (id, tenant_id, user_id, email, state, is_primary, created_at, verified_at) \
             VALUES ($1, $2, $3, $4, 'active', 1, $5, $6)",
        )
        .bind(new_id())
        .bind(tenant_id)
        .bind(&user.id)
        .bind(new.email.as_str())
        .bind(now)
        .bind(new.verified.then_some(now))
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique("email"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user holding this active address in the tenant, and whether it is proven.
    pub async fn user_by_email(
        &self,
        tenant_id: &str,
        email: &Email,
    ) -> StoreResult<Option<EmailOwner>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", e.verified_at FROM users u JOIN user_emails e ON e.user_id = u.id \
             WHERE e.tenant_id = $1 AND e.email = $2 AND e.state = 'active'"
        ))
        .bind(tenant_id)
        .bind(email.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(EmailOwner {
                user: user(&row)?,
                verified: row.try_get::<Option<i64>, _>("verified_at")?.is_some(),
            })
        })
        .transpose()
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
                    state: EmailState::parse(&row.try_get::<String, _>("state")?)
                        .unwrap_or(EmailState::Previous),
                    is_primary: row.try_get::<i64, _>("is_primary")? != 0,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Replace a user's roles, and which of them configuration granted.
    pub async fn set_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
        roles: &[String],
        configured_roles: &[String],
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET roles = $1, configured_roles = $2, updated_at = $3 \
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(json_text(roles))
        .bind(json_text(configured_roles))
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

    /// The first proof of an address through our own mail (a sign-in code): marks it
    /// verified and, if it was not, removes the account's password (set by whoever signed up
    /// with the address before proving it) and ends every session with feed entries, all in
    /// one transaction. `true` when this was the first proof; `false` (and nothing changed)
    /// when the address was proven already.
    pub async fn prove_email(
        &self,
        revoking: Revoking<'_>,
        user_id: &str,
        email: &Email,
    ) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        if !mark_verified(&mut tx, &revoking.tenant.id, user_id, email.as_str()).await? {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE users SET password_hash = NULL, updated_at = $1 WHERE tenant_id = $2 AND id = $3",
        )
        .bind(now_ms())
        .bind(&revoking.tenant.id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        end_user_sessions(&mut tx, revoking, user_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Delete a user with everything that hangs off it (addresses, sessions, refresh tokens,
    /// challenges: `ON DELETE CASCADE`), ending their sessions and cutting off their tokens
    /// on the feed in the same transaction. Audit events stay; they name the user by id only.
    pub async fn delete_user(&self, revoking: Revoking<'_>, user_id: &str) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        end_user_sessions(&mut tx, revoking, user_id).await?;
        some_row(
            sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(&revoking.tenant.id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?,
        )?;
        tx.commit().await?;
        Ok(())
    }
}

/// Mark the user's address verified inside `tx`; `true` when it was not verified before.
pub(crate) async fn mark_verified(
    tx: &mut AnyConnection,
    tenant_id: &str,
    user_id: &str,
    email: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE user_emails SET verified_at = $1 \
         WHERE tenant_id = $2 AND user_id = $3 AND email = $4 AND verified_at IS NULL",
    )
    .bind(now_ms())
    .bind(tenant_id)
    .bind(user_id)
    .bind(email)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

fn json_text(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}
