-- OAuth2 / OpenID Connect: providers per tenant, the short-lived state of a sign-in in
-- flight, the provider identities users sign in with, and connections (a user's provider
-- tokens, for backends). Secrets are sealed with the master key, the row id as associated
-- data: client secrets ("oauth_providers:<id>"), PKCE verifiers and nonces
-- ("oauth_states:<id>"), provider tokens ("connections:<id>:access" / ":refresh").

CREATE TABLE oauth_providers (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    display_name      TEXT NOT NULL,
    issuer            TEXT,
    endpoints         TEXT NOT NULL DEFAULT '{}',
    client_id         TEXT NOT NULL,
    extra_client_ids  TEXT NOT NULL DEFAULT '[]',
    client_secret     TEXT,
    scopes            TEXT NOT NULL DEFAULT '[]',
    redirect_urls     TEXT NOT NULL DEFAULT '[]',
    enabled           BIGINT NOT NULL DEFAULT 1,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX oauth_providers_name ON oauth_providers (tenant_id, name);

-- Stored by the hash of the state handed to the browser; single use (deleted when spent).
CREATE TABLE oauth_states (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider_id   TEXT NOT NULL REFERENCES oauth_providers(id) ON DELETE CASCADE,
    state_hash    TEXT NOT NULL UNIQUE,
    redirect_url  TEXT NOT NULL,
    secrets       TEXT NOT NULL,
    scopes        TEXT NOT NULL DEFAULT '[]',
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

-- Users are keyed by (tenant, provider issuer, provider subject), never by email. Not tied
-- to the provider row: a provider deleted and configured again finds the same users.
CREATE TABLE user_identities (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    provider      TEXT NOT NULL,
    email         TEXT,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX user_identities_subject ON user_identities (tenant_id, issuer, subject);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- refreshing_until: a replica's claim on refreshing the tokens (one refresh at a time).
CREATE TABLE connections (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id       TEXT NOT NULL REFERENCES oauth_providers(id) ON DELETE CASCADE,
    subject           TEXT NOT NULL,
    email             TEXT,
    access_token      TEXT NOT NULL,
    refresh_token     TEXT,
    scopes            TEXT NOT NULL DEFAULT '[]',
    expires_at        BIGINT,
    refreshing_until  BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX connections_user ON connections (tenant_id, user_id, provider_id);
CREATE UNIQUE INDEX connections_subject ON connections (tenant_id, provider_id, subject);
