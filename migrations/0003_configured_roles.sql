-- Roles a user holds because configuration grants them (AUTH_ADMIN_EMAILS, later the
-- tenant's `admins` setting): granted only while a verified address of the user is listed,
-- and taken back at the next sign-in once it no longer is. A JSON array, like `roles`.
ALTER TABLE users ADD COLUMN configured_roles TEXT NOT NULL DEFAULT '[]';

-- Every read of the revocation feed looks back a few seconds past its cursor by write time
-- (PostgreSQL commits sequence numbers out of order).
CREATE INDEX revocations_created ON revocations (created_at);
