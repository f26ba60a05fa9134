-- Prune as a job (`vault prune --queue`, run by `vault worker`): the jobs table learns the
-- kind prune, and prunes run inline appear in it too (their events were journaled all
-- along). The table is recreated empty and its checkpoint forgotten, so the next open
-- replays every event into it (see 0002). The DDL must stay identical to JobsProjection.ddl.

DROP TABLE jobs;

CREATE TABLE jobs (
    job_id        TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('backup', 'restore', 'verify', 'prune')),
    status        TEXT NOT NULL
                  CHECK (status IN ('requested', 'queued', 'running', 'completed', 'partial',
                                    'failed', 'interrupted', 'cancelled')),
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
    attempt       INTEGER,
    worker        TEXT,
    last_seq      INTEGER NOT NULL
);

CREATE INDEX jobs_status ON jobs (status);

DELETE FROM projection_checkpoints WHERE name = 'jobs';
