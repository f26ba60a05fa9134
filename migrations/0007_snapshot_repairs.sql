-- Repairs (issue 13): a snapshot can be `repaired` (SnapshotRepaired gives the repaired
-- copy the original's row), and a verify that finds nothing wrong puts `corrupted`
-- snapshots back to what their backup recorded, kept in the new `backup_status` column.
-- The table is recreated empty and its checkpoint forgotten, so the next open replays
-- every event into it (see 0004). The DDL must stay identical to SnapshotsProjection.ddl.

DROP TABLE snapshots;

CREATE TABLE snapshots (
    snapshot_id      TEXT PRIMARY KEY,
    repo_id          TEXT NOT NULL,
    job_id           TEXT NOT NULL,
    snapshot_time    TEXT NOT NULL,
    host             TEXT NOT NULL,
    paths            TEXT NOT NULL,
    tags             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                     ('completed', 'partial', 'corrupted', 'forgotten', 'repaired')),
    backup_status    TEXT NOT NULL CHECK (backup_status IN ('completed', 'partial')),
    backup_type      TEXT NOT NULL CHECK (backup_type IN ('full', 'incremental')),
    parent           TEXT,
    files            INTEGER NOT NULL,
    dirs             INTEGER NOT NULL,
    bytes_raw        INTEGER NOT NULL,
    bytes_new        INTEGER NOT NULL,
    bytes_stored     INTEGER NOT NULL,
    duration_seconds REAL NOT NULL,
    recorded_seq     INTEGER NOT NULL,
    source_type      TEXT NOT NULL DEFAULT 'files',
    source           TEXT,
    group_id         TEXT
);

CREATE INDEX snapshots_repo_time ON snapshots (repo_id, snapshot_time);

DELETE FROM projection_checkpoints WHERE name = 'snapshots';
