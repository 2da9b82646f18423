-- Passkeys (WebAuthn credentials) and the server side of their ceremonies.
--
-- A credential belongs to one user of one tenant; its id (base64url, as the authenticator
-- made it) is unique per tenant, so a credential registered in tenant A is unknown in B.
-- `passkey` is webauthn-rs's record of it (public key, sign counter, backup flags) as JSON;
-- `sign_count` mirrors the counter so that its update is one conditional statement.
CREATE TABLE passkeys (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id  TEXT NOT NULL,
    name           TEXT NOT NULL,
    passkey        TEXT NOT NULL,
    sign_count     BIGINT NOT NULL DEFAULT 0,
    backup_eligible BIGINT NOT NULL DEFAULT 0,
    backed_up      BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE UNIQUE INDEX passkeys_credential ON passkeys (tenant_id, credential_id);
CREATE INDEX passkeys_user ON passkeys (tenant_id, user_id, created_at);

-- A ceremony between its start and its finish: webauthn-rs's state (JSON, holding the
-- challenge), found by id (sign-in) or by the challenge the browser signed (registration,
-- second factor). Deleted when used, whatever the outcome; the janitor drops expired ones.
CREATE TABLE passkey_challenges (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    challenge   TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX passkey_challenges_challenge ON passkey_challenges (tenant_id, challenge);
CREATE INDEX passkey_challenges_expiry ON passkey_challenges (expires_at);
