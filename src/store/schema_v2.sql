-- halosync schema version 2: the webhook queue.
--
-- Same conventions as version 1 (STRICT tables, one time shape, NOCASE
-- mailboxes, CHECKed enums).

-- When Graph last notified halosync through a subscription, for
-- `halosync subscriptions list`.
ALTER TABLE subscriptions ADD COLUMN last_notification_at TEXT
    CHECK (last_notification_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z');

-- Mailboxes that changed according to a verified notification, waiting for
-- the sync engine to pull them. Persisted before the listener answers Graph,
-- so an accepted notification survives a crash.
--
-- At most one waiting row per mailbox (arrivals coalesce into it) and at most
-- one taken row (the pull in progress): a change arriving during a pull waits
-- for the next one instead of being lost or starting a second pull.
-- agent_id is not a foreign key: the queue must accept a change even for an
-- agent the engine is about to forget, and the engine decides what to do.
CREATE TABLE webhook_queue (
    id               INTEGER PRIMARY KEY,
    mailbox          TEXT    NOT NULL COLLATE NOCASE,
    agent_id         INTEGER NOT NULL,
    subscription_id  TEXT,
    -- The strongest reason among the coalesced notifications:
    -- 'removed' and 'missed' ask for a resync, 'changed' for a delta pull.
    reason           TEXT    NOT NULL CHECK (reason IN ('changed', 'missed', 'removed')),
    notifications    INTEGER NOT NULL CHECK (notifications >= 1),
    first_at         TEXT    NOT NULL
        CHECK (first_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    last_at          TEXT    NOT NULL
        CHECK (last_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    taken_at         TEXT
        CHECK (taken_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    CHECK (first_at <= last_at)
) STRICT;
CREATE UNIQUE INDEX webhook_queue_waiting ON webhook_queue (mailbox) WHERE taken_at IS NULL;
CREATE UNIQUE INDEX webhook_queue_taken ON webhook_queue (mailbox) WHERE taken_at IS NOT NULL;

-- Notifications already queued, by a SHA-256 of what identifies them, so
-- Graph's redelivery of one it thinks was lost is recognised. Kept for a
-- day (Graph retries for at most 4 hours).
CREATE TABLE webhook_seen (
    key  BLOB NOT NULL PRIMARY KEY CHECK (length(key) = 32),
    at   TEXT NOT NULL
        CHECK (at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z')
) STRICT, WITHOUT ROWID;
CREATE INDEX webhook_seen_by_at ON webhook_seen (at);
