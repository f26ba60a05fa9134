"""The `jobs` table: one row per backup, restore, verify or prune job, for `vault jobs` and
the TUI.

Every handler upserts, so a job whose Requested event is missing (started directly, or
journaled before the request existed) still gets a row from its first event.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from vault.journal.events import (
    BackupCompleted,
    BackupFailed,
    BackupProgressed,
    BackupRequested,
    BackupStarted,
    Event,
    JobCancelled,
    JobClaimed,
    JobInterrupted,
    JobQueued,
    Progress,
    PruneCompleted,
    PruneFailed,
    PruneProgressed,
    PruneRequested,
    PruneStarted,
    RecordedEvent,
    RestoreCompleted,
    RestoreFailed,
    RestoreProgressed,
    RestoreRequested,
    RestoreStarted,
    VerifyCompleted,
    VerifyFailed,
    VerifyProgressed,
    VerifyRequested,
    VerifyStarted,
    canonical_json,
)
from vault.journal.projections.base import Handler, TableProjection, upsert
from vault.journal.readonly import connect_read_only

_ACTIVE = "jobs.status IN ('requested', 'queued', 'running')"
_WAITING = "jobs.status IN ('requested', 'queued')"

# A late or duplicated event must not undo a finished job's outcome.
_STATUS_WHILE_ACTIVE = f"CASE WHEN {_ACTIVE} THEN excluded.status ELSE jobs.status END"
_KEEP_STATUS = "jobs.status"
_KEEP_FIRST = "COALESCE(jobs.{col}, excluded.{col})"
# `current` (the file being read right now) is too fleeting for a table.
_PROGRESS_COLUMNS = set(Progress.model_fields) - {"current"}


def _kind(event: Event) -> str:
    if isinstance(event, JobQueued | JobClaimed | JobInterrupted | JobCancelled):
        return event.kind
    for prefix in ("Backup", "Restore", "Verify", "Prune"):
        if type(event).__name__.startswith(prefix):
            return prefix.lower()
    raise ValueError(f"{type(event).__name__} is not a job event")


_Requested = BackupRequested | RestoreRequested | VerifyRequested | PruneRequested
_Started = BackupStarted | RestoreStarted | VerifyStarted | PruneStarted
_Progressed = BackupProgressed | RestoreProgressed | VerifyProgressed | PruneProgressed
_Completed = BackupCompleted | RestoreCompleted | VerifyCompleted | PruneCompleted
_Failed = BackupFailed | RestoreFailed | VerifyFailed | PruneFailed


def _record(
    conn: sqlite3.Connection,
    recorded: RecordedEvent,
    job_id: str,
    status: tuple[str, str],
    values: dict[str, Any],
) -> None:
    """Upsert the job's row; `status` is (value on insert, SQL rule on update)."""
    row = {
        "job_id": job_id,
        "kind": _kind(recorded.event),
        "status": status[0],
        "actor_user": recorded.actor.user,
        **values,
        "last_seq": recorded.seq,
    }
    rules = {"status": status[1], "actor_user": _KEEP_FIRST.format(col="actor_user")}
    upsert(conn, "jobs", "job_id", row, rules)


def _when(recorded: RecordedEvent) -> str:
    # The event's own timestamp, never now(): rebuilds must reproduce the row exactly.
    return recorded.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _requested(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, _Requested)
    values = {"repository": event.repository, "requested_at": _when(recorded)}
    _record(conn, recorded, event.job_id, ("requested", _KEEP_STATUS), values)


def _started(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, _Started)
    values: dict[str, Any] = {"started_at": _when(recorded)}
    if isinstance(event, RestoreStarted):
        values["snapshot_id"] = event.snapshot_id
    _record(conn, recorded, event.job_id, ("running", _STATUS_WHILE_ACTIVE), values)


def _progressed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, _Progressed)
    values = event.model_dump(include=_PROGRESS_COLUMNS)
    _record(conn, recorded, event.job_id, ("running", _STATUS_WHILE_ACTIVE), values)


def _completed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, _Completed)
    snapshot_id: str | None = None
    if isinstance(event, BackupCompleted):
        status, snapshot_id = event.status, event.snapshot_id
    elif isinstance(event, RestoreCompleted):
        status, snapshot_id = ("partial" if event.errors else "completed"), event.snapshot_id
    else:
        status = "completed"  # a verify that found problems still ran to completion; a prune
    values = {
        "finished_at": _when(recorded),
        "snapshot_id": snapshot_id,
        "summary": canonical_json(event.model_dump(mode="json")),
    }
    _record(conn, recorded, event.job_id, (status, _STATUS_WHILE_ACTIVE), values)


def _failed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, _Failed)
    values = {
        "finished_at": _when(recorded),
        "error_kind": event.error_kind,
        "error_message": event.message,
    }
    _record(conn, recorded, event.job_id, ("failed", _STATUS_WHILE_ACTIVE), values)


def _queued(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, JobQueued)
    # A retry queues an interrupted job again; a finished or cancelled one stays so.
    rule = ("CASE WHEN jobs.status IN ('requested', 'queued', 'interrupted') "
            "THEN 'queued' ELSE jobs.status END")
    _record(conn, recorded, event.job_id, ("queued", rule), {"attempt": event.attempt})


def _claimed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, JobClaimed)
    rule = f"CASE WHEN {_WAITING} THEN 'running' ELSE jobs.status END"
    values = {"attempt": event.attempt, "worker": f"{event.host}:{event.pid}"}
    _record(conn, recorded, event.job_id, ("running", rule), values)


def _interrupted(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, JobInterrupted)
    rule = f"CASE WHEN {_ACTIVE} THEN 'interrupted' ELSE jobs.status END"
    values = {"finished_at": _when(recorded), "error_kind": "Interrupted",
              "error_message": event.reason}
    _record(conn, recorded, event.job_id, ("interrupted", rule), values)


def _cancelled(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, JobCancelled)
    rule = f"CASE WHEN {_WAITING} THEN 'cancelled' ELSE jobs.status END"
    _record(conn, recorded, event.job_id, ("cancelled", rule),
            {"finished_at": _when(recorded)})


class JobsProjection(TableProjection):
    name = "jobs"
    tables = ("jobs",)
    ddl = (
        """CREATE TABLE jobs (
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
)""",
        "CREATE INDEX jobs_status ON jobs (status)",
    )

    def handlers(self) -> dict[type[Event], Handler]:
        return {
            BackupRequested: _requested,
            RestoreRequested: _requested,
            VerifyRequested: _requested,
            PruneRequested: _requested,
            BackupStarted: _started,
            RestoreStarted: _started,
            VerifyStarted: _started,
            PruneStarted: _started,
            BackupProgressed: _progressed,
            RestoreProgressed: _progressed,
            VerifyProgressed: _progressed,
            PruneProgressed: _progressed,
            BackupCompleted: _completed,
            RestoreCompleted: _completed,
            VerifyCompleted: _completed,
            PruneCompleted: _completed,
            BackupFailed: _failed,
            RestoreFailed: _failed,
            VerifyFailed: _failed,
            PruneFailed: _failed,
            JobQueued: _queued,
            JobClaimed: _claimed,
            JobInterrupted: _interrupted,
            JobCancelled: _cancelled,
        }


def read_jobs(journal_path: Path, *, statuses: list[str] | None = None,
              job_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of the `jobs` table, newest first, read on a read-only connection.

    The store keeps the table current in every append's own transaction, so what this
    returns always agrees with the events up to some `seq`.
    """
    where, params = ["1 = 1"], list[Any]()
    if statuses:
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params += statuses
    if job_id is not None:
        where.append("job_id = ?")
        params.append(job_id)
    sql = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY last_seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    conn = connect_read_only(journal_path)
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()
