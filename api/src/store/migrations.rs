//! The schema's migrations, embedded in the binary. 0001 and 0002 were written once per
//! database (`migrations/sqlite/`, `migrations/postgres/`, identical but for the words that
//! differ, which a test checks); from 0003 on each migration is one file in `migrations/`,
//! written in the words both databases share, with the few that differ spelled as
//! placeholders that [`dialect`] substitutes per backend.

use std::borrow::Cow;

use anyhow::Context as _;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::db::{Backend, Db};

/// One migration: version, description and its SQL, per backend or shared.
struct Step {
    version: i64,
    description: &'static str,
    sql: Sql,
}

enum Sql {
    /// Written once per database (the migrations applied before the shared form).
    PerBackend {
        sqlite: &'static str,
        postgres: &'static str,
    },
    /// Written once, placeholders substituted by [`dialect`].
    Shared(&'static str),
}

const STEPS: &[Step] = &[
    Step {
        version: 1,
        description: "init",
        sql: Sql::PerBackend {
            sqlite: include_str!("../../../migrations/sqlite/0001_init.sql"),
            postgres: include_str!("../../../migrations/postgres/0001_init.sql"),
        },
    },
    Step {
        version: 2,
        description: "mail challenges limits",
        sql: Sql::PerBackend {
            sqlite: include_str!("../../../migrations/sqlite/0002_mail_challenges_limits.sql"),
            postgres: include_str!("../../../migrations/postgres/0002_mail_challenges_limits.sql"),
        },
    },
    Step {
        version: 3,
        description: "configured roles, revocations by time",
        sql: Sql::Shared(include_str!(
            "../../../migrations/0003_configured_roles.sql"
        )),
    },
    Step {
        version: 4,
        description: "oauth providers, identities, connections",
        sql: Sql::Shared(include_str!("../../../migrations/0004_oauth_providers.sql")),
    },
    Step {
        version: 5,
        description: "admin: disabled users, audit user agents, token expiry, search indexes",
        sql: Sql::Shared(include_str!("../../../migrations/0005_admin.sql")),
    },
    Step {
        version: 6,
        description: "revocation users",
        sql: Sql::Shared(include_str!(
            "../../../migrations/0006_revocation_users.sql"
        )),
    },
    Step {
        version: 7,
        description: "used id_tokens",
        sql: Sql::Shared(include_str!("../../../migrations/0007_used_id_tokens.sql")),
    },
    Step {
        version: 8,
        description: "provider signing key ids",
        sql: Sql::Shared(include_str!(
            "../../../migrations/0008_provider_signing_key.sql"
        )),
    },
    Step {
        version: 9,
        description: "mfa: totp, recovery codes, pending sign-ins",
        sql: Sql::Shared(include_str!("../../../migrations/0009_mfa.sql")),
    },
    Step {
        version: 10,
        description: "passkeys",
        sql: Sql::Shared(include_str!("../../../migrations/0010_passkeys.sql")),
    },
    Step {
        version: 11,
        description: "janitor indexes and leases",
        sql: Sql::Shared(include_str!("../../../migrations/0011_janitor.sql")),
    },
    Step {
        version: 12,
        description: "revocation feed notified by a trigger",
        sql: Sql::Shared(include_str!("../../../migrations/0012_feed_notify.sql")),
    },
    Step {
        version: 13,
        description: "revocation feed notification says when a commit only created sessions",
        sql: Sql::Shared(include_str!(
            "../../../migrations/0013_feed_notify_kind.sql"
        )),
    },
];

/// The words that differ between the databases, as placeholders in shared migrations and
/// their spelling per backend.
const WORDS: &[(&str, &str, &str)] = &[
    // (placeholder, SQLite, PostgreSQL)
    (
        "{serial_primary_key}",
        "INTEGER PRIMARY KEY AUTOINCREMENT",
        "BIGSERIAL PRIMARY KEY",
    ),
    // The extension may be missing or not ours to create (a managed database without
    // superuser): then the migration still succeeds, and the search scans.
    ("{trigram_indexes}", "", TRIGRAM_INDEXES_POSTGRES),
    // Replicas are told of feed entries by PostgreSQL NOTIFY; SQLite has no one to tell.
    (
        "{revocations_notify_trigger}",
        "",
        REVOCATIONS_NOTIFY_TRIGGER_POSTGRES,
    ),
    (
        "{revocations_notify_by_kind}",
        "",
        REVOCATIONS_NOTIFY_BY_KIND_POSTGRES,
    ),
];

/// The PostgreSQL spelling of `{revocations_notify_trigger}`: every statement that writes
/// feed entries notifies the channel the replicas listen on (`store::notify`), delivered
/// when its transaction commits.
const REVOCATIONS_NOTIFY_TRIGGER_POSTGRES: &str = r#"CREATE FUNCTION auth_notify_revocations() RETURNS trigger LANGUAGE plpgsql AS $notify$
BEGIN
    PERFORM pg_notify('auth_revocations', '');
    RETURN NULL;
END
$notify$;
CREATE TRIGGER revocations_notify AFTER INSERT ON revocations
    FOR EACH STATEMENT EXECUTE FUNCTION auth_notify_revocations();"#;

/// The PostgreSQL spelling of `{revocations_notify_by_kind}`: the trigger of 0012, now
/// looking at the rows its statement inserted (a transition table): payload
/// `session_created` when they are all of that kind (`store::notify`), empty otherwise.
const REVOCATIONS_NOTIFY_BY_KIND_POSTGRES: &str = r#"DROP TRIGGER revocations_notify ON revocations;
CREATE OR REPLACE FUNCTION auth_notify_revocations() RETURNS trigger LANGUAGE plpgsql AS $notify$
BEGIN
    IF EXISTS (SELECT 1 FROM added WHERE kind <> 'session_created') THEN
        PERFORM pg_notify('auth_revocations', '');
    ELSE
        PERFORM pg_notify('auth_revocations', 'session_created');
    END IF;
    RETURN NULL;
END
$notify$;
CREATE TRIGGER revocations_notify AFTER INSERT ON revocations
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION auth_notify_revocations();"#;

/// The PostgreSQL spelling of `{trigram_indexes}`: the expressions are exactly those
/// `users(search)` matches with `LIKE`, so the planner can use them.
const TRIGRAM_INDEXES_POSTGRES: &str = r#"DO $trgm$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm unavailable (%): users(search) will scan', SQLERRM;
    END;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX user_emails_search ON user_emails USING gin (email gin_trgm_ops)
            WHERE state = 'active';
        CREATE INDEX users_name_search ON users USING gin ((lower(COALESCE(name_display, '') || ' ' || COALESCE(name_first, '') || ' ' || COALESCE(name_last, ''))) gin_trgm_ops);
    END IF;
END
$trgm$;"#;

/// A shared migration's SQL for `backend`.
fn dialect(sql: &str, backend: Backend) -> String {
    WORDS
        .iter()
        .fold(sql.to_owned(), |sql, (placeholder, sqlite, postgres)| {
            let word = match backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            sql.replace(placeholder, word)
        })
}

impl Step {
    fn sql(&self, backend: Backend) -> Cow<'static, str> {
        match (&self.sql, backend) {
            (Sql::PerBackend { sqlite, .. }, Backend::Sqlite) => Cow::Borrowed(*sqlite),
            (Sql::PerBackend { postgres, .. }, Backend::Postgres) => Cow::Borrowed(*postgres),
            (Sql::Shared(sql), backend) => Cow::Owned(dialect(sql, backend)),
        }
    }
}

impl Db {
    /// Apply the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrations = STEPS
            .iter()
            .map(|step| {
                let sql = match step.sql(self.backend) {
                    Cow::Borrowed(sql) => sql.into_sql_str(),
                    Cow::Owned(sql) => sqlx::AssertSqlSafe(sql).into_sql_str(),
                };
                Migration::new(
                    step.version,
                    Cow::Borrowed(step.description),
                    MigrationType::Simple,
                    sql,
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await
            .context("applying migrations failed")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations")
    }

    fn sql_files(dir: &std::path::Path) -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let mut expected = Vec::new();
        for backend in ["sqlite", "postgres"] {
            for file in sql_files(&root().join(backend)) {
                let text = std::fs::read_to_string(root().join(backend).join(&file)).unwrap();
                expected.push((backend, file, text));
            }
        }
        for file in sql_files(&root()) {
            let text = std::fs::read_to_string(root().join(&file)).unwrap();
            expected.push(("shared", file, text));
        }
        let mut embedded = Vec::new();
        for step in STEPS {
            match &step.sql {
                Sql::PerBackend { sqlite, postgres } => {
                    embedded.push((step.version, "sqlite", *sqlite));
                    embedded.push((step.version, "postgres", *postgres));
                }
                Sql::Shared(sql) => embedded.push((step.version, "shared", *sql)),
            }
        }
        assert_eq!(expected.len(), embedded.len(), "{expected:?}");
        for (backend, file, text) in &expected {
            let found = embedded.iter().find(|(version, b, sql)| {
                b == backend && sql == text && file.starts_with(&format!("{version:04}_"))
            });
            assert!(
                found.is_some(),
                "{backend}/{file} is not embedded under its version"
            );
        }
        // Increasing; numbers are handed out to parallel work, so one may land before the
        // numbers below it.
        let versions: Vec<i64> = STEPS.iter().map(|s| s.version).collect();
        assert!(versions.windows(2).all(|w| w[1] > w[0]), "{versions:?}");
    }

    /// The two trees describe the same schema: equal once comments are dropped and the
    /// per-database words are written as their placeholders.
    #[test]
    fn both_databases_get_the_same_schema() {
        let normalise = |sql: &str, backend: usize| {
            let mut sql: String = sql
                .lines()
                .map(|line| line.split("--").next().unwrap_or_default().trim_end())
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            for (placeholder, sqlite, postgres) in WORDS {
                // A word spelled as nothing (SQLite's `{trigram_indexes}`) cannot be found
                // back; the per-backend migrations do not use those.
                let word = [*sqlite, *postgres][backend];
                if !word.is_empty() {
                    sql = sql.replace(word, placeholder);
                }
            }
            sql
        };
        for step in STEPS {
            if let Sql::PerBackend { sqlite, postgres } = &step.sql {
                assert_eq!(
                    normalise(sqlite, 0),
                    normalise(postgres, 1),
                    "migration {} differs beyond the known words",
                    step.version
                );
            }
            for backend in [Backend::Sqlite, Backend::Postgres] {
                let sql = step.sql(backend);
                assert!(
                    WORDS
                        .iter()
                        .all(|(placeholder, ..)| !sql.contains(placeholder)),
                    "migration {}: a placeholder left for {backend:?}",
                    step.version
                );
            }
        }
    }
}
