"""Running an operation as a journaled job: Requested -> Started -> Progressed* -> outcome.

Every long operation (backup, restore, verify) goes through `JobRun`, inline from the CLI
or inside the worker, so the journal tells the same story either way. Progress reaches the
journal as one event about once a second, never per chunk.
"""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType
from typing import Any

from vault.errors import Interrupted, JournalError, VaultError
from vault.foundation.progress import ProgressReporter, ProgressUpdate
from vault.journal import Journal
from vault.journal import events as ev
from vault.runtime.inline_jobs import inline_claim

log = logging.getLogger(__name__)

_PROGRESS = {
    "backup": ev.BackupProgressed,
    "restore": ev.RestoreProgressed,
    "verify": ev.VerifyProgressed,
    "prune": ev.PruneProgressed,
}
_FAILED = {
    "backup": ev.BackupFailed,
    "restore": ev.RestoreFailed,
    "verify": ev.VerifyFailed,
    "prune": ev.PruneFailed,
}


def new_job_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:16]}"


class JournalProgress:
    """A ProgressReporter that appends `<Kind>Progressed` events.

    Progress is counted in worker threads, and a Journal's SQLite connection belongs to
    the thread that opened it. So reporters only leave the newest update in a slot, and
    one flusher thread with its own connection appends it (at most every `interval`;
    updates in between are coalesced, never queued up). `close()` flushes the last one.
    """

    def __init__(self, journal: Journal, kind: str, job_id: str,
                 interval: float = 0.5) -> None:
        self.kind, self.job_id = kind, job_id
        self._path, self._actor = journal.path, journal.actor
        self._spool = journal.spool  # shared: events keep their order if the journal fails
        self._interval = interval
        self._pending: ProgressUpdate | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{job_id}",
                                        daemon=True)
        self._thread.start()

    def report(self, update: ProgressUpdate) -> None:
        with self._lock:
            self._pending = update

    def _run(self) -> None:
        try:
            journal = Journal(self._path, actor=self._actor, spool=self._spool)
        except JournalError as exc:
            log.warning("progress of %s not journaled: %s", self.job_id, exc.message)
            return
        try:
            while not self._stop.wait(self._interval):
                self._flush(journal)
            self._flush(journal)
        except JournalError as exc:
            # Progress is only progress: the job goes on, and its outcome is journaled
            # (or spooled, or reported failing) by the main thread.
            log.warning("progress of %s not journaled: %s", self.job_id, exc.message)
        finally:
            journal.close()

    def _flush(self, journal: Journal) -> None:
        with self._lock:
            update, self._pending = self._pending, None
        if update is None:
            return
        journal.append(self.job_id, _PROGRESS[self.kind](
            job_id=self.job_id, phase=update.phase, bytes_done=update.bytes_done,
            bytes_total=update.bytes_total, items_done=update.items_done,
            items_total=update.items_total, rate_bps=update.rate_bps,
            eta_seconds=update.eta_seconds, current=update.current,
        ))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class JobRun:
    """Context manager: journals the request now and a failure if the body raises."""

    def __init__(self, journal: Journal, kind: ev.JobKind, requested: ev.Event,
                 job_id: str) -> None:
        self.journal = journal
        self.kind = kind
        self.job_id = job_id
        self.requested = requested
        self.finished = False
        self._reporters: list[JournalProgress] = []

    @classmethod
    def start(cls, journal: Journal, kind: ev.JobKind, job_id: str | None,
              **requested: Any) -> JobRun:
        job_id = job_id or new_job_id(kind)
        event_type = {"backup": ev.BackupRequested, "restore": ev.RestoreRequested,
                      "verify": ev.VerifyRequested, "prune": ev.PruneRequested}[kind]
        event = event_type(job_id=job_id, **requested)
        return cls(journal, kind, event, job_id)

    def __enter__(self) -> JobRun:
        # A queued job's Requested event was journaled by the CLI that enqueued it (and a
        # retry's by the first attempt); the worker running it must not record it again.
        if not self.already_requested():
            # Run inline by this process: its claim lets the next command tell, should
            # this process be killed, that the job is not running any more.
            self.journal.append_many([(self.job_id, self.requested),
                                      (self.job_id, inline_claim(self.job_id, self.kind))])
        return self

    def already_requested(self) -> bool:
        return bool(self.journal.read(stream_id=self.job_id,
                                      types=[self.requested.type_name()], limit=1))

    def record(self, event: ev.Event) -> None:
        self.journal.append(self.job_id, event)

    def complete(self, event: ev.Event) -> None:
        self._close_reporters()  # the last progress lands before the outcome
        self.record(event)
        self.finished = True

    def _close_reporters(self) -> None:
        for reporter in self._reporters:
            reporter.close()
        self._reporters = []

    def progress(self) -> ProgressReporter:
        reporter = JournalProgress(self.journal, self.kind, self.job_id)
        self._reporters.append(reporter)
        return reporter

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close_reporters()
        if exc is None or self.finished:
            return
        if isinstance(exc, KeyboardInterrupt):
            exc = Interrupted()
        setattr(exc, "journaled", True)  # noqa: B010  # the CLI must not journal it again
        kind = exc.kind if isinstance(exc, VaultError) else type(exc).__name__
        message = exc.message if isinstance(exc, VaultError) else str(exc)
        self.record(_FAILED[self.kind](job_id=self.job_id, error_kind=kind, message=message))
