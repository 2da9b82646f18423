-- Foundation schema (PostgreSQL). Same tables and columns as ../sqlite/0001_init.sql:
-- ids are TEXT (UUID v7), times are BIGINT milliseconds since the epoch, JSON is TEXT.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    password_hash       TEXT,
    name_first          TEXT,
    name_last           TEXT,
    name_display        TEXT,
    avatar              TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    roles               TEXT NOT NULL DEFAULT '[]',
    -- Access tokens of this user with iat <= this (seconds) are revoked.
    tokens_valid_after  BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX users_tenant ON users (tenant_id, created_at);

CREATE TABLE user_emails (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    state        TEXT NOT NULL,           -- active | pending | previous
    is_primary   BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    verified_at  BIGINT
);
CREATE UNIQUE INDEX user_emails_active ON user_emails (tenant_id, email) WHERE state = 'active';
CREATE INDEX user_emails_user ON user_emails (user_id);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    method         TEXT NOT NULL,
    user_agent     TEXT,
    os             TEXT,
    browser        TEXT,
    ip             TEXT,
    created_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoke_reason  TEXT
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    -- The pair this token was exchanged for, sealed with the master key, kept for the grace window.
    successor   TEXT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,          -- space-separated
    secret_hash   TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);

-- Service-wide, not per tenant: one issuer signs for every tenant.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    private_key  TEXT NOT NULL,           -- PKCS#8 DER sealed with the master key
    public_jwk   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT
);

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT,
    user_id     TEXT,
    session_id  TEXT,
    ip          TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, at);

-- The revocation feed verifiers follow. Not tied to tenants by key: a deleted tenant's
-- cut-off must outlive it.
CREATE TABLE revocations (
    seq         BIGSERIAL PRIMARY KEY,
    tenant      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    iat_cutoff  BIGINT,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX revocations_expiry ON revocations (expires_at);
