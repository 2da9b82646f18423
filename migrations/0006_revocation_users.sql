-- The user a feed entry concerns, when the entry names one of their sessions (`session`,
-- `session_created`), so that the API's `sessionEvents` subscriptions can tell whose it is
-- without a lookup; NULL for the other kinds and for entries written before.
ALTER TABLE revocations ADD COLUMN user_id TEXT;
