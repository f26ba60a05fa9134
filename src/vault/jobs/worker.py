"""`vault worker`: the Huey consumer, plus finding the jobs a dead worker left behind.

A worker that dies without a word (SIGKILL, OOM killer, power cut) leaves its job
"running" in the journal. Every job a worker takes is journaled as `JobClaimed` with the
worker's host, pid and process start time; a worker on the same host can therefore tell
a dead claimant from a live one, even with a reused pid. On start, and every
`RECOVER_EVERY` seconds while it runs, the worker marks such jobs `JobInterrupted` and
queues backups again (up to `MAX_RETRIES` times, backing off exponentially). A restore is
never retried on its own: it writes into a target someone may be using. A retried backup
whose snapshot was already saved is not run twice (see `tasks._already_saved`).

A message on the queue that is not a job vault wrote (`vault.jobs.wire`) is dropped
unread and journaled as `JobRejected`; if it stood for a real job (an older vault's
pickled message), that job is still `queued` in the journal and `requeue_lost` puts it
back, as JSON, once it has been missing for `LOST_AFTER`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from huey.consumer import ConsumerStopped

from vault.config.model import VaultConfig
from vault.errors import StaleStreamVersion
from vault.foundation import processes
from vault.foundation.paths import ensure_private_dir
from vault.foundation.worker_presence import BEAT_EVERY, PresenceFile
from vault.jobs.commands import JobCommand
from vault.jobs.queue import JobQueue
from vault.jobs.schedules import SCHEDULE_EVERY, ScheduleRunner
from vault.jobs.wire import Rejection
from vault.journal import Journal
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs

#: how often a running worker looks for jobs of dead workers, in seconds
RECOVER_EVERY = 30.0
#: a queued job whose message is on no queue this long (seconds) after it was due is lost
LOST_AFTER = 120.0
#: automatic retries after an interruption, per job kind (restore: never; a prune once: a
#: killed prune leaves nothing the next one cannot finish, docs/prune.md)
MAX_RETRIES = {"backup": 3, "restore": 0, "verify": 0, "prune": 1}

log = logging.getLogger("vault.jobs")


@dataclass
class WorkerOptions:
    workers: int = 1
    retry_delay: float = 10.0  # the first retry's delay; doubled for each further one
    # What scheduled jobs are queued with, so they load the config this worker runs with.
    config_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    schedule_every: float = SCHEDULE_EVERY  # seconds between two plans of the schedules


def claimant_alive(claim: ev.JobClaimed) -> bool:
    """Is the process that claimed the job still running? True when we cannot tell
    (`vault.foundation.processes` has the rule: pid and start time, zombies ended)."""
    return processes.claimant_alive(claim.host, claim.pid, claim.pid_started)


def recover_interrupted(journal: Journal, queue: JobQueue,
                        retry_delay: float = 10.0) -> list[ev.JobInterrupted]:
    """Mark jobs whose worker died as interrupted; queue backups again. Returns the marks."""
    marked: list[ev.JobInterrupted] = []
    for row in read_jobs(journal.path, statuses=["running"]):
        stream = journal.stream(row["job_id"])
        claims = [r.event for r in stream if isinstance(r.event, ev.JobClaimed)]
        queued = [r.event for r in stream if isinstance(r.event, ev.JobQueued)]
        if not claims or not queued or claimant_alive(claims[-1]):
            continue  # an inline CLI run, or a live worker's job
        event = _interrupt(journal, claims[-1], queued[-1], stream[-1].stream_version)
        if event is None:
            continue
        marked.append(event)
        if event.will_retry:
            command = JobCommand.model_validate(queued[-1].command).retry()
            delay = retry_delay * 2 ** (claims[-1].attempt - 1)
            queue.submit(journal, command, delay=delay)
            log.warning("job %s: worker %s:%d died; retry %d in %.0fs", claims[-1].job_id,
                        claims[-1].host, claims[-1].pid, command.attempt - 1, delay)
        else:
            log.warning("job %s: worker %s:%d died; not retried", claims[-1].job_id,
                        claims[-1].host, claims[-1].pid)
    return marked


def _interrupt(journal: Journal, claim: ev.JobClaimed, queued: ev.JobQueued,
               version: int) -> ev.JobInterrupted | None:
    retries_left = claim.attempt <= MAX_RETRIES[claim.kind]
    event = ev.JobInterrupted(
        job_id=claim.job_id, kind=claim.kind, attempt=claim.attempt,
        reason=f"worker {claim.host}:{claim.pid} died while running attempt {claim.attempt}",
        will_retry=retries_left)
    try:
        # Two workers starting at once both see the dead job: only one may mark and retry it.
        journal.append(claim.job_id, event, expected_version=version)
    except StaleStreamVersion:
        return None
    return event


def journal_rejections(journal_path: Path, queue: str) -> Callable[[Rejection], None]:
    """What the consumer calls for each message it dropped: `JobRejected` in stream
    `queue`, through a connection of its own (it runs in the consumer's threads)."""

    def record(rejection: Rejection) -> None:
        log.warning("dropped a message from the %s (%d bytes, sha256 %s): %s",
                    rejection.where, rejection.size_bytes, rejection.sha256[:16],
                    rejection.reason)
        with Journal(journal_path) as journal:
            journal.append("queue", ev.JobRejected(
                queue=queue, found_in=rejection.where, reason=rejection.reason,
                size_bytes=rejection.size_bytes, sha256=rejection.sha256))

    return record


def journal_admission(journal_path: Path) -> Callable[[JobCommand], str | None]:
    """A message runs only if this worker's journal queued exactly its command (a
    `JobQueued` of the same job and attempt): the queue carries a copy, the journal —
    in the private state directory — is the authority. A well-formed message forged by
    whoever can write to the queue (naming, say, a config file of theirs) is refused."""

    def admit(command: JobCommand) -> str | None:
        with Journal(journal_path) as journal:
            stream = journal.stream(command.job_id)
        queued = [r.event.command for r in stream if isinstance(r.event, ev.JobQueued)
                  and r.event.attempt == command.attempt]
        if not queued:
            return f"job {command.job_id[:80]} (attempt {command.attempt}) was never queued"
        if all(JobCommand.model_validate(q) != command for q in queued):
            return f"job {command.job_id[:80]}: not the command its JobQueued holds"
        return None

    return admit


def requeue_lost(journal: Journal, queue: JobQueue,
                 lost_after: float = LOST_AFTER) -> list[str]:
    """Queue again, as the same attempt, jobs that are `queued` but whose message is gone.

    That happens when a worker dies between taking the message and journaling its claim.
    Sending the same attempt twice is safe: only one delivery can claim it.
    """
    waiting = queue.waiting_ids()
    now = datetime.now(UTC)
    lost: list[str] = []
    for row in read_jobs(journal.path, statuses=["queued"]):
        queued = [r for r in journal.stream(row["job_id"]) if isinstance(r.event, ev.JobQueued)]
        if row["job_id"] in waiting or not queued:
            continue
        last = queued[-1]
        assert isinstance(last.event, ev.JobQueued)
        overdue = (now - last.recorded_at).total_seconds() - last.event.delay_seconds
        if overdue < lost_after:
            continue  # just submitted: its message may be on its way to the queue
        queue.enqueue(JobCommand.model_validate(last.event.command))
        log.warning("job %s: its queue message was lost; queued again", row["job_id"])
        lost.append(row["job_id"])
    return lost


class _Stop:
    """SIGTERM or SIGINT: stop taking jobs and let running ones finish; a second one
    stops at once (running jobs are then marked interrupted by the next worker)."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.info("received %s: finishing running jobs (send it again to stop now)",
                 signal.Signals(signum).name)


def run_worker(config: VaultConfig, options: WorkerOptions) -> None:
    """Run the consumer until SIGTERM/SIGINT; jobs of dead workers are recovered first.

    The main thread also runs the scheduler loop (`vault.jobs.schedules`): right after
    start, which reports the runs missed while no worker ran, then every
    `options.schedule_every` seconds."""
    _log_to_stderr()
    queue = JobQueue.from_config(config)
    queue.check()
    queue.huey.on_rejected = journal_rejections(config.journal_path(), queue.where)
    queue.huey.admit = journal_admission(config.journal_path())
    ensure_private_dir(config.journal_path().parent)  # whoever writes there sets the jobs
    consumer = queue.huey.create_consumer(workers=options.workers, periodic=False,
                                          max_delay=1.0, check_worker_health=True)
    with Journal(config.journal_path()) as journal:
        runner = ScheduleRunner(config, journal, queue, config_path=options.config_path,
                                overrides=options.overrides)
        recover_interrupted(journal, queue, options.retry_delay)
        requeue_lost(journal, queue)
        consumer.start()
        stop = _Stop()
        stop.install()  # after start(): Huey's own handlers would not be graceful on TERM
        log.info("worker %s:%d: %d thread(s) on %s", socket.gethostname(), os.getpid(),
                 options.workers, queue.where)
        _tick(runner)
        # a file `vault status` and the TUI read to tell that a worker is running
        presence = PresenceFile(config.resolved_state_dir(), queue.where, options.workers)
        presence.beat()
        health = last_recovery = last_tick = last_beat = time.monotonic()
        try:
            while not stop.requested:
                try:
                    health = consumer.loop(health)
                except ConsumerStopped:
                    break
                if time.monotonic() - last_beat >= BEAT_EVERY:
                    presence.beat()
                    last_beat = time.monotonic()
                if time.monotonic() - last_recovery >= RECOVER_EVERY:
                    recover_interrupted(journal, queue, options.retry_delay)
                    requeue_lost(journal, queue)
                    last_recovery = time.monotonic()
                if time.monotonic() - last_tick >= options.schedule_every:
                    _tick(runner)
                    last_tick = time.monotonic()
        finally:
            presence.remove()
        consumer.stop(graceful=True)
        runner.close()
    log.info("worker stopped")


def _tick(runner: ScheduleRunner) -> None:
    try:
        runner.tick()
    except Exception:  # a broken schedule must not stop the jobs; the next tick retries
        log.exception("scheduler tick failed")


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("vault.jobs", "huey"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
