-- bench/scale/generate.sql: fill a migrated auth-api PostgreSQL database with :users users
-- (one active primary address each, one in ten with a previous address too), three sessions
-- per user (:sessions in all: most live, one in ten revoked within the last day, one in ten
-- expired within the last twelve hours, so the janitor keeps them), a live refresh token per
-- session plus a spent one for one session in ten, and an audit event per sign-up and per
-- sign-in. Every user has the password hash :'hash' (a real argon2id hash of the benchmark
-- password), so any of them can sign in. Run by bench/scale/run.sh through psql:
--   psql -v users=1000000 -v hash='$argon2id$…' -f generate.sql "$URL"
-- Rows are made by generate_series in a handful of statements (minutes, not hours).

\set ON_ERROR_STOP on
\timing on
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';
SET max_parallel_maintenance_workers = 2;

-- Load first, index after. Every index, primary and unique key of the five big tables, and
-- every foreign key from or to them, is kept here, dropped before the rows go in and made
-- again after them: one sorted build per index and one bulk check per foreign key instead of
-- millions of random index insertions and row-by-row checks (53 min became minutes).
CREATE TEMP TABLE big (name text PRIMARY KEY);
INSERT INTO big VALUES ('users'), ('user_emails'), ('sessions'), ('refresh_tokens'), ('audit_events');
CREATE TEMP TABLE deferred AS
SELECT 1 AS step, c.conrelid::regclass::text AS tbl, c.conname::text AS name,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid)) AS ddl
FROM pg_constraint c
WHERE c.contype IN ('p', 'u') AND c.conrelid::regclass::text IN (SELECT name FROM big)
UNION ALL
SELECT 2, i.tablename::text, i.indexname::text, i.indexdef
FROM pg_indexes i
WHERE i.schemaname = current_schema() AND i.tablename IN (SELECT name FROM big)
  AND i.indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))
UNION ALL
SELECT 3, c.conrelid::regclass::text, c.conname::text,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid))
FROM pg_constraint c
WHERE c.contype = 'f' AND (c.conrelid::regclass::text IN (SELECT name FROM big)
                           OR c.confrelid::regclass::text IN (SELECT name FROM big));
DO $$
DECLARE d record;
BEGIN
  FOR d IN SELECT * FROM deferred ORDER BY step DESC LOOP
    IF d.step = 2 THEN EXECUTE format('DROP INDEX %I', d.name);
    ELSE EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', d.tbl, d.name);
    END IF;
  END LOOP;
END $$;
SELECT step, count(*) AS deferred FROM deferred GROUP BY step ORDER BY step;

INSERT INTO tenants (id, slug, name, settings, created_at)
VALUES ('00000000-0000-7000-8000-000000000000', 'default', 'Default', '{}',
        (extract(epoch FROM now()) * 1000)::bigint)
ON CONFLICT (slug) DO NOTHING;

CREATE TEMP TABLE scale AS
SELECT (SELECT id FROM tenants WHERE slug = 'default') AS tenant,
       (extract(epoch FROM now()) * 1000)::bigint AS now,
       :users::bigint AS users;

-- Users: created over the last year, names for users(search).
INSERT INTO users (id, tenant_id, password_hash, name_first, name_last, name_display,
                   created_at, updated_at)
SELECT md5('u' || i)::uuid::text, s.tenant, :'hash',
       'First' || i, 'Last' || (i % 50000), 'User ' || i,
       s.now - (s.users - i) * 31536 , s.now - (s.users - i) * 31536
FROM scale s, generate_series(1, (SELECT users FROM scale)) AS i;

INSERT INTO user_emails (id, tenant_id, user_id, email, state, is_primary, created_at, verified_at)
SELECT md5('e' || i)::uuid::text, s.tenant, md5('u' || i)::uuid::text,
       'user' || i || '@example.com', 'active', 1, s.now - (s.users - i) * 31536,
       s.now - (s.users - i) * 31536
FROM scale s, generate_series(1, (SELECT users FROM scale)) AS i;

INSERT INTO user_emails (id, tenant_id, user_id, email, state, is_primary, created_at, verified_at)
SELECT md5('p' || i)::uuid::text, s.tenant, md5('u' || i)::uuid::text,
       'old' || i || '@example.org', 'previous', 0, s.now - (s.users - i) * 31536 - 1000, NULL
FROM scale s, generate_series(1, (SELECT users FROM scale), 10) AS i;

-- Sessions: three per user. j = 0 live, j = 1 revoked in the last day for one user in ten,
-- j = 2 expired in the last twelve hours for one user in ten (all kept by the janitor).
INSERT INTO sessions (id, tenant_id, user_id, method, user_agent, os, browser, ip,
                      created_at, last_seen_at, expires_at, revoked_at, revoke_reason)
SELECT md5('s' || i || '.' || j)::uuid::text, s.tenant, md5('u' || i)::uuid::text, 'password',
       'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0', 'Linux', 'Firefox', '192.0.2.' || (i % 250),
       s.now - 3600000 * (1 + (i % 200)), s.now - 60000 * (i % 500),
       CASE WHEN j = 2 AND i % 10 = 0 THEN s.now - 60000 * (1 + i % 700)
            ELSE s.now + 86400000 * (1 + i % 20) END,
       CASE WHEN j = 1 AND i % 10 = 0 THEN s.now - 60000 * (1 + i % 1400) END,
       CASE WHEN j = 1 AND i % 10 = 0 THEN 'sign_out' END
FROM scale s, generate_series(1, (SELECT users FROM scale)) AS i, generate_series(0, 2) AS j;

-- Refresh tokens: the live one of every session, and a spent predecessor (its successor
-- already forgotten) for one session in ten.
INSERT INTO refresh_tokens (id, tenant_id, session_id, token_hash, created_at, expires_at,
                            used_at, successor)
SELECT md5('r' || i || '.' || j)::uuid::text, s.tenant, md5('s' || i || '.' || j)::uuid::text,
       encode(sha256(('r' || i || '.' || j)::bytea), 'hex'), s.now - 3600000,
       s.now + 86400000 * (1 + i % 20), NULL, NULL
FROM scale s, generate_series(1, (SELECT users FROM scale)) AS i, generate_series(0, 2) AS j;

INSERT INTO refresh_tokens (id, tenant_id, session_id, token_hash, created_at, expires_at,
                            used_at, successor)
SELECT md5('q' || i)::uuid::text, s.tenant, md5('s' || i || '.0')::uuid::text,
       encode(sha256(('q' || i)::bytea), 'hex'), s.now - 7200000,
       s.now + 86400000, s.now - 3600000, NULL
FROM scale s, generate_series(1, (SELECT users FROM scale), 10) AS i;

-- Audit: the sign-up of every user and the sign-in of every session.
INSERT INTO audit_events (id, tenant_id, at, action, actor, user_id, session_id, ip, user_agent, detail)
SELECT md5('a' || i)::uuid::text, s.tenant, s.now - (s.users - i) * 31536, 'user.sign_up',
       'user:' || md5('u' || i)::uuid::text, md5('u' || i)::uuid::text, NULL, '192.0.2.1',
       'Mozilla/5.0', '{}'
FROM scale s, generate_series(1, (SELECT users FROM scale)) AS i;

INSERT INTO audit_events (id, tenant_id, at, action, actor, user_id, session_id, ip, user_agent, detail)
SELECT md5('b' || i || '.' || j)::uuid::text, s.tenant, s.now - 3600000 * (1 + (i % 200)),
       'user.sign_in', 'user:' || md5('u' || i)::uuid::text, md5('u' || i)::uuid::text,
       md5('s' || i || '.' || j)::uuid::text, '192.0.2.1', 'Mozilla/5.0', '{"method":"password"}'
FROM scale s, generate_series(1, (SELECT users FROM scale)) AS i, generate_series(0, 2) AS j;

-- The keys, then the indexes, then the foreign keys, as they were.
DO $$
DECLARE d record;
BEGIN
  FOR d IN SELECT * FROM deferred ORDER BY step, tbl, name LOOP
    EXECUTE d.ddl;
  END LOOP;
END $$;

VACUUM ANALYZE;

SELECT relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) AS size
FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT 8;
