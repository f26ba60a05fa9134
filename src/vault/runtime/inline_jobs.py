"""Jobs run inline by a `vault` command (not by a worker): who runs them, and noticing
when that process was killed.

A worker's claim (`JobClaimed`: host, pid, process start time) lets the next worker mark
a job whose worker died `interrupted`. An inline job records the same claim for the
command's own process, and the next command that opens the journal on this host marks
it `JobInterrupted` (never retried: nobody queued it) once that process is gone; without
this a `vault backup` killed with -9 stays `running` in `vault jobs` forever.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3

from vault.errors import JournalError
from vault.foundation.processes import claimant_alive, process_start_time
from vault.journal import Journal
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs

__all__ = ["claimant_gone", "inline_claim", "mark_killed_inline_jobs", "process_start_time"]

log = logging.getLogger(__name__)


def inline_claim(job_id: str, kind: ev.JobKind) -> ev.JobClaimed:
    """The claim of an inline job by this very process."""
    pid = os.getpid()
    return ev.JobClaimed(job_id=job_id, kind=kind, attempt=1, host=socket.gethostname(),
                         pid=pid, pid_started=process_start_time(pid))


def claimant_gone(claim: ev.JobClaimed) -> bool:
    """Whether the claiming process has certainly ended (only judged on its own host; the
    rule, the same as a worker's, is `vault.foundation.processes`')."""
    return not claimant_alive(claim.host, claim.pid, claim.pid_started)


def mark_killed_inline_jobs(journal: Journal) -> list[str]:
    """Journal `JobInterrupted` for every active inline job whose process is gone; the
    ids marked. Queued jobs are left to the worker's own recovery (they may be retried)."""
    marked: list[str] = []
    if journal.spool is not None and journal.spool.active:
        return marked  # the versions below could not be checked: the next command will
    try:
        active = read_jobs(journal.path, statuses=["requested", "running"])
    except (sqlite3.Error, OSError) as exc:  # e.g. a locked or unreadable journal
        log.debug("cannot look for killed inline jobs: %s", exc)
        return marked
    for row in active:
        stream = journal.stream(row["job_id"])
        if any(isinstance(r.event, ev.JobQueued) for r in stream):
            continue
        claims = [r.event for r in stream if isinstance(r.event, ev.JobClaimed)]
        if not claims or not claimant_gone(claims[-1]):
            continue
        claim = claims[-1]
        try:
            journal.append(claim.job_id, ev.JobInterrupted(
                job_id=claim.job_id, kind=claim.kind, attempt=claim.attempt,
                reason=f"vault process {claim.host}:{claim.pid} ended while running it "
                       "(killed?)", will_retry=False),
                expected_version=stream[-1].stream_version)
        except JournalError:
            continue  # another command marked it first, or the journal is unwritable
        marked.append(claim.job_id)
    return marked
