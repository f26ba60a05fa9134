-- The append-only event journal. See docs/journal.md for the hash chain definition.
-- Applied by vault.journal.migrate inside its own BEGIN IMMEDIATE transaction; a migration
-- file must not contain BEGIN/COMMIT itself.

CREATE TABLE events (
    -- Global total order. Assigned by the writer (max + 1 under the write lock) rather than
    -- by SQLite, because the row's hash covers it.
    seq            INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL CHECK (stream_version >= 1),
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL CHECK (schema_version >= 1),
    payload        TEXT    NOT NULL CHECK (json_valid(payload)),
    -- Fixed width (microseconds, 'Z'), so text comparison is time order.
    recorded_at    TEXT    NOT NULL,
    actor          TEXT    NOT NULL CHECK (json_valid(actor)),
    prev_hash      TEXT    NOT NULL CHECK (length(prev_hash) = 64),
    hash           TEXT    NOT NULL CHECK (length(hash) = 64),
    -- Optimistic concurrency: two writers cannot both claim a stream's next version.
    -- The unique index it creates also serves lookups by stream_id alone (leftmost column).
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_type ON events (type);
CREATE INDEX events_recorded_at ON events (recorded_at);
-- `vault journal --actor U` filters on the OS user inside the actor JSON.
CREATE INDEX events_actor_user ON events (json_extract(actor, '$.user'));

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
