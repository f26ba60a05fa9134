"""The job detail's data: one row of the `jobs` projection and the job's own events."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from vault_tui.data.journal import EventLine, read_only, stream_lines

#: the newest events of a job shown (a long job flushes a progress event every second)
EVENTS_SHOWN = 1000
ACTIVE = ("requested", "queued", "running")


@dataclass(frozen=True)
class JobRow:
    """The `jobs` projection's row, with its times parsed."""

    job_id: str
    kind: str
    status: str
    phase: str | None = None
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    actor_user: str | None = None
    worker: str | None = None
    attempt: int | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    items_done: int | None = None
    items_total: int | None = None
    rate_bps: float | None = None
    eta_seconds: float | None = None
    snapshot_id: str | None = None
    error_kind: str | None = None
    error_message: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def error(self) -> str | None:
        if self.error_message is None:
            return None
        return f"{self.error_kind}: {self.error_message}" if self.error_kind \
            else self.error_message


@dataclass(frozen=True)
class JobDetail:
    job_id: str
    job: JobRow | None  # None: the journal has no row for it (no such job, or not yet)
    events: list[EventLine]  # oldest first
    earlier: int  # events of the job older than those listed


_TIMES = ("requested_at", "started_at", "finished_at")
_ROW_FIELDS = {f.name for f in fields(JobRow)}


def read_job(journal_path: Path, job_id: str, limit: int = EVENTS_SHOWN) -> JobDetail:
    with read_only(journal_path) as conn:
        if conn is None:
            return JobDetail(job_id=job_id, job=None, events=[], earlier=0)
        conn.execute("BEGIN")  # one read snapshot: the row agrees with the events
        row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        events, earlier = stream_lines(conn, job_id, limit)
        conn.execute("COMMIT")
    return JobDetail(job_id=job_id, job=None if row is None else _job(dict(row)),
                     events=events, earlier=earlier)


def _job(row: dict[str, Any]) -> JobRow:
    values = {k: v for k, v in row.items() if k in _ROW_FIELDS}
    for key in _TIMES:
        if values.get(key):
            values[key] = datetime.fromisoformat(values[key])
    return JobRow(**values)
