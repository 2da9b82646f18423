-- The janitor at scale: indexes behind each of its purges (so a round reads what it deletes,
-- not whole tables), and a lease per job so that one replica runs a round, not every one.

-- Sessions end by expiry or by revocation; each purge walks its own index.
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
-- Sealed successors are forgotten once the grace window is over: only the few rows that
-- still hold one are indexed.
CREATE INDEX refresh_tokens_successor ON refresh_tokens (used_at) WHERE successor IS NOT NULL;
-- Rate-limit counters and failed sign-in counts past their day.
CREATE INDEX rate_limits_window ON rate_limits (window_start);
CREATE INDEX sign_in_failures_last ON sign_in_failures (last_failure_at);

-- Who runs a job until when: claimed by a statement that only succeeds once the previous
-- claim has run out (so a replica that dies holding it is replaced when it expires), given
-- back when a replica stops.
CREATE TABLE janitor_leases (
    job     TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    until   BIGINT NOT NULL
);
