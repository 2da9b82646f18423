-- Mail, one-time secrets and brute-force protection. Identical for SQLite and PostgreSQL.

-- One-time secrets sent by mail: sign-in codes (kind 'otp') and password resets
-- (kind 'reset'). Only a keyed hash of the secret is kept.
CREATE TABLE challenges (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    email          TEXT NOT NULL,
    -- The account it was sent to; NULL when the email had none (OTP sign-up, or a reset
    -- request for an unknown email, which can never be used).
    user_id        TEXT REFERENCES users(id) ON DELETE CASCADE,
    secret_hash    TEXT NOT NULL UNIQUE,
    attempts       BIGINT NOT NULL DEFAULT 0,
    max_attempts   BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    closed_at      BIGINT,
    closed_reason  TEXT              -- used | superseded | attempts
);
CREATE INDEX challenges_open ON challenges (tenant_id, kind, email) WHERE closed_at IS NULL;
CREATE INDEX challenges_expiry ON challenges (expires_at);

-- Consecutive failed sign-ins per email, known or not (so a lockout says nothing about
-- whether an account exists).
CREATE TABLE sign_in_failures (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    failures         BIGINT NOT NULL,
    last_failure_at  BIGINT NOT NULL,
    locked_until     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, email)
);

-- Fixed-window counters, shared by every API replica on the same database.
CREATE TABLE rate_limits (
    bucket        TEXT PRIMARY KEY,
    window_start  BIGINT NOT NULL,
    hits          BIGINT NOT NULL
);

-- Mail waiting to be sent. The message (sender, subject, bodies) is sealed with the master
-- key because it carries codes and links; it is erased once sent.
CREATE TABLE mail_outbox (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    template         TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    message          TEXT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    locked_until     BIGINT NOT NULL DEFAULT 0,
    sent_at          BIGINT,
    failed_at        BIGINT,
    last_error       TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
