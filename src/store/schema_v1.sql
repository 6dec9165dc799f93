-- halosync schema version 1.
--
-- Conventions, so operators can read the data with the sqlite3 shell:
-- * Every table is STRICT: a value of the wrong type is an error, not a silent
--   conversion.
-- * Times are TEXT in one exact shape, RFC 3339 UTC with milliseconds
--   (2026-02-10T00:00:00.000Z). The GLOB checks hold every writer to that shape
--   because retention pruning and cursor comparisons rely on text order being
--   time order.
-- * Mailboxes are UPNs, which Exchange treats case-insensitively, so they use
--   COLLATE NOCASE: Alice@x and alice@x are the same mailbox for UNIQUE too.
-- * Enum-like TEXT columns carry CHECK constraints listing every allowed value.

-- Halo agents that halosync knows about and the health of their calendar sync.
CREATE TABLE agents (
    agent_id    INTEGER PRIMARY KEY,              -- Halo agent id
    name        TEXT    NOT NULL,
    email       TEXT,
    mailbox     TEXT    COLLATE NOCASE UNIQUE,    -- UPN used in Graph; NULL until resolved
    connection  TEXT,                             -- configured connection name
    enabled     INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    state       TEXT    NOT NULL DEFAULT 'ok'
        CHECK (state IN ('ok', 'reauth_required', 'mailbox_unavailable', 'disabled', 'error')),
    last_error  TEXT,
    diagnosis   TEXT,                             -- operator-facing explanation of last_error
    updated_at  TEXT    NOT NULL
        CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z')
) STRICT;

-- One Halo appointment <-> one Exchange event in one mailbox.
--
-- mailbox is copied from the agent on purpose: an event lives in the mailbox it
-- was created in, even if the agent's mailbox later changes.
-- Links are tombstoned (state 'deleted') rather than removed, so a deleted item
-- coming back in a delta round is recognised instead of re-created.
CREATE TABLE links (
    id                 INTEGER PRIMARY KEY,
    agent_id           INTEGER NOT NULL REFERENCES agents (agent_id),
    mailbox            TEXT    NOT NULL COLLATE NOCASE,
    halo_id            INTEGER UNIQUE,            -- NULL while a create on Halo is pending
    graph_id           TEXT,                      -- immutable id; NULL while a create on Graph is pending
    ical_uid           TEXT,
    series_master_id   TEXT,
    halo_version       TEXT,                      -- Halo last_modified, verbatim
    halo_fingerprint   TEXT,
    graph_version      TEXT,                      -- changeKey / etag, verbatim
    graph_fingerprint  TEXT,
    origin             TEXT    NOT NULL CHECK (origin IN ('halo', 'exchange', 'import')),
    state              TEXT    NOT NULL CHECK (state IN ('active', 'pending', 'deleted', 'conflict')),
    created_at         TEXT    NOT NULL
        CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    updated_at         TEXT    NOT NULL
        CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    CHECK (halo_id IS NOT NULL OR graph_id IS NOT NULL),
    UNIQUE (mailbox, graph_id)
) STRICT;
CREATE INDEX links_by_agent ON links (agent_id);
CREATE INDEX links_by_ical_uid ON links (mailbox, ical_uid) WHERE ical_uid IS NOT NULL;
CREATE INDEX links_by_series_master ON links (mailbox, series_master_id) WHERE series_master_id IS NOT NULL;
-- Most links are 'active'; the ones needing attention are few and looked up often.
CREATE INDEX links_needing_attention ON links (state) WHERE state <> 'active';

-- Graph calendarView delta links, one per mailbox and sync window.
CREATE TABLE delta_cursors (
    mailbox       TEXT NOT NULL COLLATE NOCASE,
    window_start  TEXT NOT NULL
        CHECK (window_start GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    window_end    TEXT NOT NULL
        CHECK (window_end GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    delta_link    TEXT NOT NULL CHECK (delta_link <> ''),
    updated_at    TEXT NOT NULL
        CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    PRIMARY KEY (mailbox, window_start, window_end),
    CHECK (window_start < window_end)
) STRICT;

-- The newest Halo last_modified already processed, per agent and scope (for
-- example 'appointments'), converted to the canonical UTC shape.
CREATE TABLE halo_cursors (
    agent_id       INTEGER NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    scope          TEXT    NOT NULL CHECK (scope <> ''),
    last_modified  TEXT    NOT NULL
        CHECK (last_modified GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    updated_at     TEXT    NOT NULL
        CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    PRIMARY KEY (agent_id, scope)
) STRICT;

-- Graph change-notification subscriptions. Only a hash of clientState is
-- kept: the value itself is a shared secret and must not sit in the database.
-- agent_id has no ON DELETE action: a subscription has to be deleted on Graph
-- before its agent can be forgotten.
CREATE TABLE subscriptions (
    subscription_id    TEXT    PRIMARY KEY,
    agent_id           INTEGER NOT NULL REFERENCES agents (agent_id),
    mailbox            TEXT    NOT NULL COLLATE NOCASE,
    connection         TEXT    NOT NULL,
    resource           TEXT    NOT NULL,
    client_state_hash  BLOB    NOT NULL CHECK (length(client_state_hash) = 32), -- SHA-256
    expires_at         TEXT    NOT NULL
        CHECK (expires_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    created_at         TEXT    NOT NULL
        CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    renewed_at         TEXT
        CHECK (renewed_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    state              TEXT    NOT NULL
        CHECK (state IN ('active', 'reauthorization_required', 'removed', 'expired', 'error')),
    last_error         TEXT
) STRICT;
CREATE INDEX subscriptions_by_agent ON subscriptions (agent_id);
CREATE INDEX subscriptions_by_mailbox ON subscriptions (mailbox);
CREATE INDEX subscriptions_by_expiry ON subscriptions (expires_at);

-- OAuth refresh tokens for delegated connections, encrypted at rest.
CREATE TABLE oauth_tokens (
    subject            TEXT PRIMARY KEY
        CHECK (subject GLOB 'connection:?*'
            OR (subject GLOB 'agent:[0-9]*' AND substr(subject, 7) NOT GLOB '*[^0-9]*')),
    connection         TEXT NOT NULL,
    account            TEXT COLLATE NOCASE,       -- signed-in UPN
    nonce              BLOB,
    ciphertext         BLOB,                      -- encrypted refresh token
    access_expires_at  TEXT
        CHECK (access_expires_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    updated_at         TEXT NOT NULL
        CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    state              TEXT NOT NULL CHECK (state IN ('ok', 'reauth_required', 'revoked')),
    -- A nonce without its ciphertext (or the reverse) cannot be decrypted.
    CHECK ((nonce IS NULL) = (ciphertext IS NULL))
) STRICT;

-- The intent journal: a row is written before a write to Halo or Graph and
-- removed after the outcome is recorded, so a crash in between is replayed.
-- link_id has no ON DELETE action: losing an intent with its link would hide
-- a write whose outcome is unknown.
CREATE TABLE pending_operations (
    id              INTEGER PRIMARY KEY,
    link_id         INTEGER REFERENCES links (id),
    side            TEXT    NOT NULL CHECK (side IN ('halo', 'graph')),
    kind            TEXT    NOT NULL CHECK (kind IN ('create', 'update', 'delete')),
    transaction_id  TEXT    UNIQUE,               -- deterministic Graph transactionId
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT,
    created_at      TEXT    NOT NULL
        CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    updated_at      TEXT    NOT NULL
        CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    -- Graph accepts transactionId only on event creation, and every Graph
    -- create must carry one so a retried create cannot duplicate the event.
    CHECK ((transaction_id IS NOT NULL) = (side = 'graph' AND kind = 'create'))
) STRICT;
CREATE INDEX pending_operations_by_link ON pending_operations (link_id);

-- Webhook request log. subscription_id is not a foreign key: requests naming
-- unknown or removed subscriptions are exactly the ones worth keeping.
CREATE TABLE inbound_requests (
    id               INTEGER PRIMARY KEY,
    at               TEXT    NOT NULL
        CHECK (at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    method           TEXT    NOT NULL CHECK (method <> ''),
    path             TEXT    NOT NULL,
    status           INTEGER NOT NULL CHECK (status BETWEEN 100 AND 599),
    outcome          TEXT    NOT NULL
        CHECK (outcome IN ('accepted', 'validation', 'lifecycle', 'rejected', 'malformed', 'error')),
    subscription_id  TEXT,
    mailbox          TEXT    COLLATE NOCASE,
    item_count       INTEGER NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    duration_ms      INTEGER NOT NULL CHECK (duration_ms >= 0),
    detail           TEXT
) STRICT;
CREATE INDEX inbound_requests_by_at ON inbound_requests (at);

-- Calls halosync made to Halo, Graph and the identity platform. path is
-- scrubbed of secrets by the caller. status is NULL when no response came
-- back, and then error says why. agent_id is not a foreign key so the log
-- outlives the agents it mentions until retention prunes it.
CREATE TABLE outbound_requests (
    id           INTEGER PRIMARY KEY,
    at           TEXT    NOT NULL
        CHECK (at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    upstream     TEXT    NOT NULL CHECK (upstream IN ('graph', 'halo', 'identity')),
    method       TEXT    NOT NULL CHECK (method <> ''),
    path         TEXT    NOT NULL,
    status       INTEGER CHECK (status BETWEEN 100 AND 599),
    duration_ms  INTEGER NOT NULL CHECK (duration_ms >= 0),
    mailbox      TEXT    COLLATE NOCASE,
    agent_id     INTEGER,
    request_id   TEXT,                            -- Graph request-id header
    error        TEXT,
    CHECK (status IS NOT NULL OR error IS NOT NULL)
) STRICT;
CREATE INDEX outbound_requests_by_at ON outbound_requests (at);

-- One row per run of a scheduled or on-demand job.
CREATE TABLE sync_runs (
    id           INTEGER PRIMARY KEY,
    job          TEXT NOT NULL CHECK (job <> ''),
    started_at   TEXT NOT NULL
        CHECK (started_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    finished_at  TEXT
        CHECK (finished_at GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9]Z'),
    outcome      TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'failed', 'skipped')),
    stats        TEXT CHECK (json_valid(stats)),
    error        TEXT,
    -- A run is finished exactly when it has left 'running', and not before it began.
    CHECK ((outcome = 'running') = (finished_at IS NULL)),
    CHECK (finished_at >= started_at)
) STRICT;
CREATE INDEX sync_runs_by_job ON sync_runs (job, started_at);
CREATE INDEX sync_runs_by_started_at ON sync_runs (started_at);
