-- scimwatch's durable state. Times are RFC 3339 text in UTC with nine fractional digits
-- and a `Z` (fixed width), so they compare and sort as text.

-- Findings, open (resolved_at IS NULL) and resolved. `body` is the whole Finding as JSON;
-- the other columns are copies for querying. `deadline` is the pending window's end.
CREATE TABLE findings (
    id          TEXT PRIMARY KEY NOT NULL,
    workspace   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    deadline    TEXT,
    body        TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX findings_open_by_workspace ON findings (workspace) WHERE resolved_at IS NULL;
CREATE INDEX findings_open_pending_deadline ON findings (deadline)
    WHERE resolved_at IS NULL AND state = 'pending';

-- The change log: append-only. The triggers below make the database refuse edits.
CREATE TABLE changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    user        TEXT NOT NULL,
    before      TEXT NOT NULL,
    after       TEXT NOT NULL,
    actor       TEXT,
    attribution TEXT,
    idp_event   TEXT,
    latency_ms  INTEGER
);
CREATE INDEX changes_by_time ON changes (at, id);
CREATE TRIGGER changes_no_update BEFORE UPDATE ON changes
BEGIN
    SELECT RAISE(ABORT, 'the change log is append-only');
END;
CREATE TRIGGER changes_no_delete BEFORE DELETE ON changes
BEGIN
    SELECT RAISE(ABORT, 'the change log is append-only');
END;

-- Poller checkpoints (cursors, last-seen event times).
CREATE TABLE checkpoints (
    name       TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The last snapshots the daemon compares against, as JSON documents.
CREATE TABLE snapshots (
    key        TEXT PRIMARY KEY NOT NULL,
    json       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Activation history; the store keeps the latest 1000 rows.
CREATE TABLE activations (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    "trigger" TEXT NOT NULL,
    scope     TEXT NOT NULL,
    started   TEXT NOT NULL,
    finished  TEXT NOT NULL,
    result    TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX activations_by_trigger ON activations ("trigger", id);
