//! All SQL and every database difference, one file per aggregate. Functions take the tenant
//! they work in where a record belongs to one (keys, the revocation feed and lookups by a
//! secret's hash are service-wide), return domain values, and fail with a [`StoreError`]
//! that knows nothing of HTTP or GraphQL. Queries are written once for both databases (see
//! [`db`]); migrations are in [`migrations`], LISTEN/NOTIFY behind two methods in `notify`.
//! Reads go to the pool ([`Store::pool`]); every statement or transaction that may write
//! takes [`Store::writer`], which on SQLite is the process's one write connection.

pub mod api_tokens;
pub mod audit;
pub mod challenges;
pub mod connections;
pub mod db;
pub mod keys;
pub mod leases;
pub mod limits;
pub mod mfa;
pub mod migrations;
mod notify;
pub mod outbox;
pub mod passkeys;
pub mod profile;
pub mod providers;
pub mod revocations;
pub mod sessions;
pub mod tenants;
pub mod users;

pub use db::{Backend, Db, Writer};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the payload names what was taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The row is not there (or not in this tenant).
    #[error("not found")]
    NotFound,
    /// Anything else from the database.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Turn a unique-constraint violation into [`StoreError::Conflict`] naming `what`.
pub(crate) fn conflict_on_unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(error),
    }
}

/// The store: a handle on the database with one method family per aggregate.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    /// A store over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The connection pool, for reads, and for tools and tests that look behind the API.
    pub fn pool(&self) -> &sqlx::AnyPool {
        &self.db.pool
    }

    /// A connection to write on ([`Db::writer`]): for every statement or transaction that
    /// may write.
    pub async fn writer(&self) -> Result<Writer<'_>, sqlx::Error> {
        self.db.writer().await
    }
}

/// `NotFound` when a statement changed no row (the record it names does not exist).
pub(crate) fn some_row(done: sqlx::any::AnyQueryResult) -> StoreResult<()> {
    match done.rows_affected() {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

/// Decode a JSON text column, falling back to the type's default on malformed data
/// (which only a hand-edited database can hold).
pub(crate) fn json_column<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}
