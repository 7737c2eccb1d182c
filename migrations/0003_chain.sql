-- The tamper-evident change log (issue 6, stage 2). The design is in src/store/chain.rs;
-- in short: every chained row carries an HMAC-SHA256 (keyed by a secret that never
-- reaches this file) over its canonical bytes and the previous chained row's MAC.
--
-- kind:          'change' (an access change, as before) | 'anchor' (starts the chain and
--                commits to the unchained rows just before it) | 'head' (a full pass
--                recorded the chain's head) | 'prune' (retention moved the start forward)
-- ticket, justification: what a mapping or exception supplies for the change
-- detail:        JSON for anchor / head / prune rows
-- key_id:        which key chained the row (a hash of the key, not the key)
-- prev_mac, mac: hex; NULL on a row written without a chain key (rows from before this
--                migration are such rows: the first anchor commits to them)
ALTER TABLE changes ADD COLUMN kind TEXT NOT NULL DEFAULT 'change';
ALTER TABLE changes ADD COLUMN ticket TEXT;
ALTER TABLE changes ADD COLUMN justification TEXT;
ALTER TABLE changes ADD COLUMN detail TEXT;
ALTER TABLE changes ADD COLUMN key_id TEXT;
ALTER TABLE changes ADD COLUMN prev_mac TEXT;
ALTER TABLE changes ADD COLUMN mac TEXT;
CREATE INDEX changes_chained ON changes (id) WHERE mac IS NOT NULL;
CREATE INDEX changes_by_kind ON changes (kind, id);

-- Retention is the one way rows leave the change log, and it is narrow: the prune
-- transaction writes the boundary here (a row id that must exist), deletes the rows
-- *below* it, clears the boundary and appends a chained 'prune' record, all in one
-- BEGIN IMMEDIATE transaction. Outside that transaction this table is empty, so the
-- delete trigger below refuses every DELETE, as before. UPDATE stays refused always.
-- (Triggers stop mistakes and stray SQL, not an attacker who owns the file: he can drop
-- them. The MACs are what catch him.)
CREATE TABLE changes_prune (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    before_id INTEGER NOT NULL
);
CREATE TRIGGER changes_prune_boundary_exists BEFORE INSERT ON changes_prune
WHEN NOT EXISTS (SELECT 1 FROM changes WHERE id = NEW.before_id)
BEGIN
    SELECT RAISE(ABORT, 'a prune boundary must be a row of the change log');
END;
CREATE TRIGGER changes_prune_no_update BEFORE UPDATE ON changes_prune
BEGIN
    SELECT RAISE(ABORT, 'a prune boundary is written once per prune');
END;

DROP TRIGGER changes_no_delete;
CREATE TRIGGER changes_no_delete BEFORE DELETE ON changes
WHEN NOT EXISTS (SELECT 1 FROM changes_prune WHERE OLD.id < changes_prune.before_id)
BEGIN
    SELECT RAISE(ABORT, 'the change log is append-only');
END;
