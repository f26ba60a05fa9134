"""Running an operation as a journaled job: Requested -> Started -> Progressed* -> outcome.

Every long operation (backup, restore, verify) goes through `JobRun`, inline from the CLI
or inside the worker, so the journal tells the same story either way. Progress reaches the
journal as one event about once a second, never per chunk.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

from vault.errors import Interrupted, VaultError
from vault.journal import Journal
from vault.journal import events as ev
from vault.progress import ProgressReporter, ProgressUpdate

_PROGRESS = {
    "backup": ev.BackupProgressed,
    "restore": ev.RestoreProgressed,
    "verify": ev.VerifyProgressed,
}
_FAILED = {
    "backup": ev.BackupFailed,
    "restore": ev.RestoreFailed,
    "verify": ev.VerifyFailed,
}


def new_job_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:16]}"


class JournalProgress:
    """A ProgressReporter that appends `<Kind>Progressed` events."""

    def __init__(self, journal: Journal, kind: str, job_id: str) -> None:
        self.journal, self.kind, self.job_id = journal, kind, job_id

    def report(self, update: ProgressUpdate) -> None:
        event = _PROGRESS[self.kind](
            job_id=self.job_id, phase=update.phase, bytes_done=update.bytes_done,
            bytes_total=update.bytes_total, items_done=update.items_done,
            items_total=update.items_total, rate_bps=update.rate_bps,
            eta_seconds=update.eta_seconds, current=update.current,
        )
        self.journal.append(self.job_id, event)


class JobRun:
    """Context manager: journals the request now and a failure if the body raises."""

    def __init__(self, journal: Journal, kind: str, requested: ev.Event,
                 job_id: str) -> None:
        self.journal = journal
        self.kind = kind
        self.job_id = job_id
        self.requested = requested
        self.finished = False

    @classmethod
    def start(cls, journal: Journal, kind: str, job_id: str | None,
              **requested: Any) -> JobRun:
        job_id = job_id or new_job_id(kind)
        event_type = {"backup": ev.BackupRequested, "restore": ev.RestoreRequested,
                      "verify": ev.VerifyRequested}[kind]
        event = event_type(job_id=job_id, **requested)
        return cls(journal, kind, event, job_id)

    def __enter__(self) -> JobRun:
        self.journal.append(self.job_id, self.requested)
        return self

    def record(self, event: ev.Event) -> None:
        self.journal.append(self.job_id, event)

    def complete(self, event: ev.Event) -> None:
        self.record(event)
        self.finished = True

    def progress(self) -> ProgressReporter:
        return JournalProgress(self.journal, self.kind, self.job_id)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None or self.finished:
            return
        if isinstance(exc, KeyboardInterrupt):
            exc = Interrupted()
        setattr(exc, "journaled", True)  # noqa: B010  # the CLI must not journal it again
        kind = exc.kind if isinstance(exc, VaultError) else type(exc).__name__
        message = exc.message if isinstance(exc, VaultError) else str(exc)
        self.record(_FAILED[self.kind](job_id=self.job_id, error_kind=kind, message=message))
