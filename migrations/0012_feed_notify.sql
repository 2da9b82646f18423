-- Replicas hear of new revocation-feed entries through PostgreSQL NOTIFY on the channel
-- `auth_revocations` (store/notify.rs). It was a `SELECT pg_notify(...)` sent after each
-- transaction that wrote one: another round trip on every sign-in, and no notification at
-- all when the process died between its commit and the notify. A statement trigger sends
-- it with the commit itself (PostgreSQL delivers notifications when the transaction
-- commits, one per distinct payload). SQLite has one process and no channel: nothing here.
{revocations_notify_trigger}
