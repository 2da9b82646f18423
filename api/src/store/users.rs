//! Users and their email addresses.

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::mfa::{FactorCounts, factor_columns, factor_counts};
use super::sessions::{Revoking, end_user_sessions};
use super::{Store, StoreError, StoreResult, conflict_on_unique, json_column, some_row};
use crate::domain::{Email, EmailState, Millis, User, UserEmail, new_id, now_ms};

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
         u.avatar, u.metadata, u.roles, u.configured_roles, u.tokens_valid_after, u.disabled_at, u.created_at"
    };
}

/// The statement reading the owner of the active address `$2` in the tenant `$1` (a
/// [`user`] row with the address's `verified_at`), with the columns `extra` adds.
macro_rules! owner_by_email {
    ($($extra:tt)*) => {
        concat!(
            "SELECT ",
            user_columns!(),
            ", e.verified_at",
            $($extra)*,
            " FROM users u JOIN user_emails e ON e.user_id = u.id \
             WHERE e.tenant_id = $1 AND e.email = $2 AND e.state = 'active'"
        )
    };
}

/// An [`EmailOwner`] read by [`owner_by_email`].
fn email_owner(row: &AnyRow) -> StoreResult<EmailOwner> {
    Ok(EmailOwner {
        user: user(row)?,
        verified: row.try_get::<Option<i64>, _>("verified_at")?.is_some(),
    })
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
        disabled_at: row.try_get("disabled_at")?,
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
            disabled_at: None,
            created_at: now,
        };
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
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
        let row = self
            .owner_row(tenant_id, email, owner_by_email!(""))
            .await?;
        row.as_ref().map(email_owner).transpose()
    }

    /// [`Store::user_by_email`] with the owner's second factors counted in the same
    /// statement: what a password sign-in reads.
    pub async fn user_by_email_with_factors(
        &self,
        tenant_id: &str,
        email: &Email,
    ) -> StoreResult<Option<(EmailOwner, FactorCounts)>> {
        let sql = owner_by_email!(concat!(", ", factor_columns!()));
        let row = self.owner_row(tenant_id, email, sql).await?;
        row.map(|row| Ok((email_owner(&row)?, factor_counts(&row)?)))
            .transpose()
    }

    async fn owner_row(
        &self,
        tenant_id: &str,
        email: &Email,
        sql: &'static str,
    ) -> StoreResult<Option<AnyRow>> {
        Ok(sqlx::query(sql)
            .bind(tenant_id)
            .bind(email.as_str())
            .fetch_optional(self.pool())
            .await?)
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
        .execute(&mut *self.writer().await?)
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
        .execute(&mut *self.writer().await?).await?)
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
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
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
        revoking.record_audit(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Delete a user with everything that hangs off it (addresses, sessions, refresh tokens,
    /// challenges: `ON DELETE CASCADE`), ending their sessions and cutting off their tokens
    /// on the feed in the same transaction. Audit events stay; they name the user by id only.
    pub async fn delete_user(&self, revoking: Revoking<'_>, user_id: &str) -> StoreResult<()> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        end_user_sessions(&mut tx, revoking, user_id).await?;
        some_row(
            sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(&revoking.tenant.id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?,
        )?;
        revoking.record_audit(&mut tx).await?;
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

/// Where a page of users starts: after this user (newest first), or at the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCursor {
    /// `created_at` of the last user of the previous page.
    pub created_at: Millis,
    /// Its id.
    pub id: String,
}

/// What an admin changes on a user, all in one transaction (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct AdminChanges {
    /// New name parts, all three.
    pub name: Option<(Option<String>, Option<String>, Option<String>)>,
    /// New metadata.
    pub metadata: Option<serde_json::Value>,
    /// New roles, and which of them configuration still grants. Raises the user's token
    /// cut-off (with a `user` feed entry) so that tokens carrying the old roles are refused;
    /// sessions go on, and their next token carries the new roles.
    pub roles: Option<(Vec<String>, Vec<String>)>,
    /// `Some(true)` disables the account and ends every session; `Some(false)` enables it.
    pub disabled: Option<bool>,
    /// The account's active addresses, primary first: addresses not listed become previous
    /// ones, new ones are added active and proven (an admin vouches for them).
    pub emails: Option<Vec<Email>>,
}

/// `LIKE` pattern matching `search` anywhere, with `%`, `_` and `\` taken literally.
fn contains_pattern(search: &str) -> String {
    let mut pattern = String::from("%");
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The search condition of [`Store::users_page`] and [`Store::count_users`] on `$1`
/// (tenant) and `$2` (the pattern): one semi-join over a UNION of the two matches, so that
/// PostgreSQL answers each from its trigram index of migration 0005 (an `OR` of the two
/// would scan every user of the tenant: about a second at a million users).
macro_rules! search_condition {
    () => {
        " AND u.id IN (SELECT e.user_id FROM user_emails e WHERE e.tenant_id = $1 \
           AND e.state = 'active' AND e.email LIKE $2 ESCAPE '\\' \
         UNION SELECT n.id FROM users n WHERE n.tenant_id = $1 \
           AND lower(COALESCE(n.name_display, '') || ' ' || COALESCE(n.name_first, '') || ' ' || \
                     COALESCE(n.name_last, '')) LIKE $2 ESCAPE '\\')"
    };
}

/// Users of a page after `$3`/`$4` (created_at, id), newest first, at most `$5`.
macro_rules! page_tail {
    () => {
        " AND (u.created_at < $3 OR (u.created_at = $3 AND u.id < $4)) \
         ORDER BY u.created_at DESC, u.id DESC LIMIT $5"
    };
}

impl Store {
    /// Up to `limit` users of the tenant after `after`, newest first (by creation time, then
    /// id), whose active address or name contains `search` (case-insensitively).
    pub async fn users_page(
        &self,
        tenant_id: &str,
        search: Option<&str>,
        after: Option<&UserCursor>,
        limit: i64,
    ) -> StoreResult<Vec<User>> {
        let (at, id) = after.map_or((Millis::MAX, ""), |c| (c.created_at, c.id.as_str()));
        // Two statements, the same on both databases: with a search and without.
        let (sql, pattern) = match search {
            Some(search) => (
                concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users u WHERE u.tenant_id = $1",
                    search_condition!(),
                    page_tail!()
                ),
                contains_pattern(search),
            ),
            None => (
                concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users u WHERE u.tenant_id = $1 AND $2 = ''",
                    page_tail!()
                ),
                String::new(),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(tenant_id)
            .bind(pattern)
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(user).collect()
    }

    /// How many users of the tenant match `search` (all of them without one).
    pub async fn count_users(&self, tenant_id: &str, search: Option<&str>) -> StoreResult<i64> {
        let (sql, pattern) = match search {
            Some(search) => (
                concat!(
                    "SELECT COUNT(*) AS n FROM users u WHERE u.tenant_id = $1",
                    search_condition!()
                ),
                contains_pattern(search),
            ),
            None => (
                "SELECT COUNT(*) AS n FROM users u WHERE u.tenant_id = $1 AND $2 = ''",
                String::new(),
            ),
        };
        let row = sqlx::query(sql)
            .bind(tenant_id)
            .bind(pattern)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Apply an admin's `changes` to a user with the audit `events`, in one transaction;
    /// `NotFound` when the tenant has no such user, `Conflict("email")` when another account
    /// holds one of the new addresses. Returns how many sessions a disable ended.
    pub async fn admin_update_user(
        &self,
        revoking: Revoking<'_>,
        user_id: &str,
        changes: &AdminChanges,
        events: &[super::audit::AuditEvent<'_>],
    ) -> StoreResult<u64> {
        let tenant_id = &revoking.tenant.id;
        let now = now_ms();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await?;
        some_row(
            sqlx::query("UPDATE users SET updated_at = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(now)
                .bind(tenant_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?,
        )?;
        if let Some((first, last, display)) = &changes.name {
            sqlx::query(
                "UPDATE users SET name_first = $1, name_last = $2, name_display = $3 \
                 WHERE tenant_id = $4 AND id = $5",
            )
            .bind(first)
            .bind(last)
            .bind(display)
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(metadata) = &changes.metadata {
            sqlx::query("UPDATE users SET metadata = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(metadata.to_string())
                .bind(tenant_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(emails) = &changes.emails {
            replace_active_emails(&mut tx, tenant_id, user_id, emails, now).await?;
        }
        let mut ended = 0;
        match changes.disabled {
            Some(true) => {
                sqlx::query(
                    "UPDATE users SET disabled_at = $1 WHERE tenant_id = $2 AND id = $3 \
                     AND disabled_at IS NULL",
                )
                .bind(now)
                .bind(tenant_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                ended = end_user_sessions(&mut tx, revoking, user_id).await?;
            }
            Some(false) => {
                sqlx::query("UPDATE users SET disabled_at = NULL WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
        if let Some((roles, configured)) = &changes.roles {
            sqlx::query(
                "UPDATE users SET roles = $1, configured_roles = $2 WHERE tenant_id = $3 AND id = $4",
            )
            .bind(json_text(roles))
            .bind(json_text(configured))
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            if changes.disabled != Some(true) {
                cut_off_tokens(&mut tx, revoking, user_id).await?;
            }
        }
        for event in events {
            super::audit::insert_audit(&mut *tx, tenant_id, event).await?;
        }
        tx.commit().await?;
        Ok(ended)
    }
}

/// Refuse every access token of the user issued until now, sessions left running: the
/// cut-off raised past every token minted so far and a `user` entry on the feed.
async fn cut_off_tokens(
    tx: &mut AnyConnection,
    revoking: Revoking<'_>,
    user_id: &str,
) -> StoreResult<()> {
    // Tokens minted since the last cut-off carry at least its second + 1 (see
    // `mint_access`), possibly a second ahead of now: the new cut-off covers them too.
    let row = sqlx::query(
        "UPDATE users SET tokens_valid_after = CASE WHEN tokens_valid_after + 1 > $1 \
         THEN tokens_valid_after + 1 ELSE $1 END \
         WHERE tenant_id = $2 AND id = $3 RETURNING tokens_valid_after",
    )
    .bind(now_ms() / 1000)
    .bind(&revoking.tenant.id)
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    let cutoff: i64 = row.try_get("tokens_valid_after")?;
    let entry = auth_protocol::RevocationEntry::user(
        &revoking.tenant.slug,
        user_id,
        cutoff,
        revoking.horizon,
    );
    super::revocations::record(&mut *tx, &entry).await?;
    Ok(())
}

/// Make `emails` (primary first) the user's active addresses inside `tx`.
async fn replace_active_emails(
    tx: &mut AnyConnection,
    tenant_id: &str,
    user_id: &str,
    emails: &[Email],
    now: Millis,
) -> StoreResult<()> {
    let listed: Vec<&str> = emails.iter().map(Email::as_str).collect();
    let current = sqlx::query(
        "SELECT email FROM user_emails WHERE tenant_id = $1 AND user_id = $2 AND state = 'active'",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    for row in &current {
        let email: String = row.try_get("email")?;
        if !listed.contains(&email.as_str()) {
            sqlx::query(
                "UPDATE user_emails SET state = 'previous', is_primary = 0 \
                 WHERE tenant_id = $1 AND user_id = $2 AND email = $3 AND state = 'active'",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(&email)
            .execute(&mut *tx)
            .await?;
        }
    }
    sqlx::query("UPDATE user_emails SET is_primary = 0 WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for (i, email) in listed.iter().enumerate() {
        let primary = i64::from(i == 0);
        let kept = sqlx::query(
            "UPDATE user_emails SET is_primary = $1 \
             WHERE tenant_id = $2 AND user_id = $3 AND email = $4 AND state = 'active'",
        )
        .bind(primary)
        .bind(tenant_id)
        .bind(user_id)
        .bind(*email)
        .execute(&mut *tx)
        .await?;
        if kept.rows_affected() == 0 {
            // A pending or previous row of this user for the address gives way to the new one.
            sqlx::query(
                "DELETE FROM user_emails WHERE tenant_id = $1 AND user_id = $2 AND email = $3 \
                 AND state <> 'active'",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(*email)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO user_emails (id, tenant_id, user_id, email, state, is_primary, created_at, verified_at) \
                 VALUES ($1, $2, $3, $4, 'active', $5, $6, $6)",
            )
            .bind(new_id())
            .bind(tenant_id)
            .bind(user_id)
            .bind(*email)
            .bind(primary)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique("email"))?;
        }
    }
    Ok(())
}
