"""A group's members that wait for their turn to be stored say so in the journal.

A worker claims a queued group at once and stores its members one after another
(`vault.jobs.claims`); a member's own events (`BackupStarted`, progress) begin when its
turn comes, which may be long after its claim when a large files member goes first.
Until then `WaitingMembers` journals a `BackupProgressed` with phase `waiting` for it,
when the group starts and every `WAITING_EVERY` seconds, so `vault jobs` shows why it
does not move and `vault status` does not take it for a job whose worker died (one that
journaled nothing for 15 minutes).
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from vault.errors import JournalError, StaleStreamVersion
from vault.journal import Journal
from vault.journal import events as ev

#: how often a waiting member's job says it still waits, in seconds
WAITING_EVERY = 60.0

log = logging.getLogger("vault.jobs")


def still_waiting(stream: list[ev.RecordedEvent]) -> bool:
    """Has the job's current attempt journaled nothing of its own since its claim (but
    that it waits)? Earlier attempts' events do not count."""
    claims = [i for i, r in enumerate(stream) if isinstance(r.event, ev.JobClaimed)]
    if not claims:
        return False
    return all(isinstance(r.event, ev.BackupProgressed) and r.event.phase == "waiting"
               for r in stream[claims[-1] + 1:])


class WaitingMembers:
    """Context manager: a thread with its own journal connection (a Journal belongs to the
    thread that opened it) marks the still-waiting jobs of `job_ids` until the group ends."""

    def __init__(self, journal: Journal, job_ids: list[str],
                 interval: float = WAITING_EVERY) -> None:
        self._path, self._actor, self._spool = journal.path, journal.actor, journal.spool
        self._job_ids, self._interval = job_ids, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vault-group-waiting",
                                        daemon=True)

    def __enter__(self) -> WaitingMembers:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            with Journal(self._path, actor=self._actor, spool=self._spool) as journal:
                while True:
                    self._mark(journal)
                    if self._stop.wait(self._interval):
                        return
        except JournalError as exc:  # only a sign of life: the jobs go on regardless
            log.warning("waiting group members not journaled: %s", exc.message)

    def _mark(self, journal: Journal) -> None:
        for job_id in self._job_ids:
            stream = journal.stream(job_id)
            if not still_waiting(stream):
                continue  # its turn came (or it ended): its own events tell the rest
            try:
                # At the version read: a member whose turn comes meanwhile is left alone.
                journal.append(job_id, ev.BackupProgressed(
                    job_id=job_id, phase="waiting", bytes_done=0, bytes_total=None,
                    items_done=0, items_total=None, rate_bps=0.0, eta_seconds=None,
                    current="its group's members before it are being stored"),
                    expected_version=stream[-1].stream_version)
            except StaleStreamVersion:
                continue
