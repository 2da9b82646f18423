-- Second factors (issue 15): TOTP secrets, recovery codes, and the pending sign-ins that wait
-- for a factor (the mfaToken of an MFA_REQUIRED answer).

-- One authenticator app per user. `secret` is sealed with the master key under
-- `mfa_totp:<id>`; `confirmed_at` is NULL while the enrolment waits for its first code (the
-- factor is off until then). `last_step` is the last accepted 30-second step: a code is
-- accepted only for a later step, by one conditional UPDATE, so it works once.
CREATE TABLE mfa_totp (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    secret        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    confirmed_at  BIGINT,
    last_step     BIGINT NOT NULL DEFAULT 0
);

-- Recovery codes: HMAC-SHA256 under the master key (they are 60-bit random), each spent by
-- one conditional UPDATE of `used_at`.
CREATE TABLE mfa_recovery_codes (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX mfa_recovery_codes_user ON mfa_recovery_codes (user_id, code_hash);

-- A sign-in waiting for its second factor (purpose `verify`), or for the enrolment a tenant
-- policy demands (purpose `enroll`). The mfaToken is kept as its SHA-256; `pending` is the
-- sign-in to finish (method, audit action, provider connection…), sealed under
-- `mfa_challenges:<id>`. Single use (`used_at`), a few attempts, five minutes.
CREATE TABLE mfa_challenges (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,
    purpose       TEXT NOT NULL,
    pending       TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);
