-- Administration: disabled accounts, the user agent of audit events, machine-token expiry,
-- and the indexes behind users(search) and auditLog pages (newest first, keyset).
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE audit_events ADD COLUMN user_agent TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

CREATE INDEX users_page ON users (tenant_id, created_at, id);
CREATE INDEX audit_events_page ON audit_events (tenant_id, at, id);
CREATE INDEX audit_events_user ON audit_events (tenant_id, user_id, at);
CREATE INDEX audit_events_action ON audit_events (tenant_id, action, at);

-- PostgreSQL: trigram indexes for the substring search of users(search), when the pg_trgm
-- extension can be had (nothing on SQLite; without the extension the search scans).
{trigram_indexes}
