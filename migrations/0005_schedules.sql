-- Schedules that run by themselves (issue 6): the `schedules` projection. The DDL must
-- stay identical to SchedulesProjection.ddl. No checkpoint exists yet, so the next open
-- replays every event into it (see 0002).

CREATE TABLE schedules (
    name         TEXT PRIMARY KEY,
    origin       TEXT NOT NULL CHECK (origin IN ('config', 'cli')),
    definition   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    paused       INTEGER,
    last_due     TEXT,
    last_run_key TEXT,
    last_run_at  TEXT,
    last_job_ids TEXT NOT NULL DEFAULT '[]',
    last_result  TEXT,
    missed_total INTEGER NOT NULL DEFAULT 0,
    updated_seq  INTEGER NOT NULL
);

CREATE INDEX schedules_result ON schedules (last_result);

DELETE FROM projection_checkpoints WHERE name = 'schedules';
