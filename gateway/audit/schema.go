package audit

// schemaSQL creates the on-disk schema (idempotent).
//
//   - events: one row per event. record is the canonical JSON exactly as
//     hashed; hash = SHA-256(prev hash || record). The other columns are
//     copies for search only; Verify trusts nothing but record and hash.
//   - tree: for leaf n (= seq-1) the concatenation of tlog.StoredHashes(n),
//     i.e. the stored hashes with indexes StoredHashIndex(0,n)... .
//   - checkpoints: periodic signed notes (also written when idle, at Open and
//     at Close).
//   - head: the newest signed note, re-signed in every commit's transaction.
//   - meta: schema_version (2), origin, and purge_horizon: the highest seq
//     whose record retention may empty (it only grows).
//
// Triggers make the tables append-only for ordinary SQL; they protect
// against mistakes, not against someone with the file (that is what the
// chain, the tree and exported checkpoints are for).
const schemaSQL = `
CREATE TABLE IF NOT EXISTS meta(
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS events(
	seq               INTEGER PRIMARY KEY,
	id                TEXT NOT NULL UNIQUE,
	time_ns           INTEGER NOT NULL,
	action            TEXT NOT NULL,
	outcome           TEXT NOT NULL,
	actor_subject     TEXT NOT NULL,
	actor_email       TEXT NOT NULL,
	request_id        TEXT NOT NULL,
	target_request_id TEXT NOT NULL,
	grant_id          TEXT NOT NULL,
	service           TEXT NOT NULL,
	env               TEXT NOT NULL,
	record            BLOB NOT NULL,
	hash              BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS events_time    ON events(time_ns);
CREATE INDEX IF NOT EXISTS events_action  ON events(action);
CREATE INDEX IF NOT EXISTS events_subject ON events(actor_subject);
CREATE INDEX IF NOT EXISTS events_email   ON events(actor_email);
CREATE INDEX IF NOT EXISTS events_grant   ON events(grant_id);
CREATE INDEX IF NOT EXISTS events_request ON events(target_request_id);
CREATE INDEX IF NOT EXISTS events_httpreq ON events(request_id);
CREATE INDEX IF NOT EXISTS events_stream  ON events(service, env);
CREATE TABLE IF NOT EXISTS tree(
	leaf   INTEGER PRIMARY KEY,
	hashes BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints(
	id      INTEGER PRIMARY KEY,
	size    INTEGER NOT NULL,
	time_ns INTEGER NOT NULL,
	note    TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS head(
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	note TEXT NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS meta_purge_horizon_u BEFORE UPDATE ON meta
	WHEN OLD.key = 'purge_horizon' AND (NEW.key != OLD.key OR CAST(NEW.value AS INTEGER) < CAST(OLD.value AS INTEGER))
	BEGIN SELECT RAISE(ABORT, 'the audit purge horizon only moves forward'); END;
CREATE TRIGGER IF NOT EXISTS meta_purge_horizon_d BEFORE DELETE ON meta WHEN OLD.key = 'purge_horizon'
	BEGIN SELECT RAISE(ABORT, 'the audit purge horizon only moves forward'); END;
` + eventsUpdateTriggerSQL + `CREATE TRIGGER IF NOT EXISTS events_append_only_d BEFORE DELETE ON events
	BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS tree_append_only_u BEFORE UPDATE ON tree
	BEGIN SELECT RAISE(ABORT, 'audit tree is append-only'); END;
CREATE TRIGGER IF NOT EXISTS tree_append_only_d BEFORE DELETE ON tree
	BEGIN SELECT RAISE(ABORT, 'audit tree is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only_u BEFORE UPDATE ON checkpoints
	BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only_d BEFORE DELETE ON checkpoints
	BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
`

// schemaVersion is the current on-disk schema. Version 2 (retention) lets
// the events trigger empty a record at or below the purge horizon.
const schemaVersion = "2"

// eventsUpdateTriggerSQL allows exactly one UPDATE of an event row: retention
// emptying its record (and the copied search columns) while seq, id, time,
// action, outcome and hash stay, and only at or below the purge horizon.
// Everything else is refused. DELETE stays refused: the hash and the tree
// hashes of a purged event are kept so the chain still verifies.
const eventsUpdateTriggerSQL = `
CREATE TRIGGER IF NOT EXISTS events_append_only_u BEFORE UPDATE ON events
	WHEN NOT (NEW.seq = OLD.seq AND NEW.id = OLD.id AND NEW.time_ns = OLD.time_ns AND NEW.hash = OLD.hash
		AND NEW.action = OLD.action AND NEW.outcome = OLD.outcome AND length(NEW.record) = 0
		AND OLD.seq <= (SELECT coalesce(max(CAST(value AS INTEGER)), 0) FROM meta WHERE key = 'purge_horizon'))
	BEGIN SELECT RAISE(ABORT, 'audit events are append-only (retention may only empty records at or below the purge horizon)'); END;
`

// migrateV1 replaces version 1's unconditional update trigger.
const migrateV1SQL = `DROP TRIGGER IF EXISTS events_append_only_u;` + eventsUpdateTriggerSQL +
	`UPDATE meta SET value = '2' WHERE key = 'schema_version';`
