-- Read models derived from the events. Every row here can be rebuilt from the events alone
-- (`vault journal rebuild`); the DDL must stay identical to the `DDL` tuples in
-- src/vault/journal/projections/*.py, which recreate the tables on rebuild (a test compares
-- them). To change a projection's shape later, a new migration drops its table and deletes
-- its checkpoint row: the next open recreates the table and replays the events into it.

-- How far each projection has applied the events; written in the same transaction as the
-- projection rows, so the two can never disagree.
CREATE TABLE projection_checkpoints (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);

-- One row per backup, restore or verify job.
CREATE TABLE jobs (
    job_id        TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('backup', 'restore', 'verify')),
    status        TEXT NOT NULL
                  CHECK (status IN ('requested', 'running', 'completed', 'partial', 'failed')),
    repository    TEXT,
    requested_at  TEXT,
    started_at    TEXT,
    finished_at   TEXT,
    actor_user    TEXT,
    phase         TEXT,
    bytes_done    INTEGER,
    bytes_total   INTEGER,
    items_done    INTEGER,
    items_total   INTEGER,
    rate_bps      REAL,
    eta_seconds   REAL,
    snapshot_id   TEXT,
    error_kind    TEXT,
    error_message TEXT,
    summary       TEXT,
    last_seq      INTEGER NOT NULL
);

CREATE INDEX jobs_status ON jobs (status);

-- One row per snapshot a backup job recorded.
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
    recorded_seq     INTEGER NOT NULL
);

CREATE INDEX snapshots_repo_time ON snapshots (repo_id, snapshot_time);
