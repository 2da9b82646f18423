-- id_tokens spent by signInWithIdToken, by the SHA-256 hex of their decoded payload (what
-- the signature covers: a re-encoded signature over the same claims is the same token),
-- kept until the token could no longer be accepted (its exp plus the leeway). One table
-- for every tenant: a token is spent once, wherever it was presented.
CREATE TABLE used_id_tokens (
    token_hash  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX used_id_tokens_expiry ON used_id_tokens (expires_at);
