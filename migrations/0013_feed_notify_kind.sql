-- A replica's feed poller reads the feed whenever another replica's commit notifies it. Every
-- sign-in writes a `session_created` entry, which only `sessionEvents` subscribers follow:
-- the notification now says when a commit wrote nothing else (payload `session_created`),
-- so that a replica with no such subscriber does not read the feed for it (its poller's
-- one-second tick still does). Any other commit notifies with an empty payload, as before.
{revocations_notify_by_kind}
