-- Sources (issue 5): a snapshot is of a source (files, sqlite, postgresql, mongodb,
-- settings), named by its label, and may belong to a group of sources backed up together.
-- The snapshots table is recreated empty and its checkpoint forgotten, so the next open
-- replays every event into it (see 0002/0003). The DDL must stay identical to
-- SnapshotsProjection.ddl.

DROP TABLE snapshots;

CREATE TABLE snapshots (
    snapshot_id      TEXT PRIMARY KEY,
    repo_id          TEXT NOT NULL,
    job_id           TEXT NOT NULL,
    snapshot_time    TEXT NOT NULL,
    host             TEXT NOT NULL,
    paths            TEXT NOT NULL,
    tags             TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('completed', 'partial', 'corrupted', 'forgotten')),
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
