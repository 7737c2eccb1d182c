-- Alerting (issue 4). Times as in 0001: RFC 3339 UTC text, fixed width.

-- Open alerts, one row per dedup key; `body` is alert::plan::AlertRecord as JSON.
-- Closing an alert deletes its row (the outbox keeps what was sent).
CREATE TABLE alerts (
    key        TEXT PRIMARY KEY NOT NULL,
    family     TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Consecutive failed full passes per source (service, workspace).
CREATE TABLE alert_sources (
    service   TEXT NOT NULL,
    workspace TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (service, workspace)
);

-- The durable outbox: written in the same transaction as the alert state, before any
-- send; one row per (alert, sink). `body` is the alert::Alert as JSON (no secrets: sinks
-- add their keys at send time). status: pending | delivered | dead (dead letters stay).
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sink       TEXT NOT NULL,
    key        TEXT NOT NULL,
    action     TEXT NOT NULL,
    family     TEXT NOT NULL,
    body       TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    next_at    TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    status     TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    done_at    TEXT
);
CREATE INDEX outbox_pending_by_sink ON outbox (sink, id) WHERE status = 'pending';
CREATE INDEX outbox_by_status ON outbox (status, done_at);

-- Sinks marked broken (401/403/404/410, Slack's revoked answers): nothing is sent to them
-- until the daemon restarts or `scimwatch alerts test` passes for them.
CREATE TABLE alert_sinks (
    name         TEXT PRIMARY KEY NOT NULL,
    broken_since TEXT NOT NULL,
    reason       TEXT NOT NULL
);
