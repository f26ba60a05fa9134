"""The one Huey instance, built from `[queue]`, and submitting and cancelling jobs on it.

`sqlite://PATH` (the default: `queue.db` in the state dir) is Huey's SqliteStorage: WAL,
a busy timeout and `BEGIN EXCLUSIVE` dequeues, so several worker processes on one host
share it and each message is taken once. `redis://` / `rediss://` is RedisHuey: workers
on several hosts share one queue. The queue only carries job commands; everything a job
does, and its status, is in the journal.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vault.config import VaultConfig
from vault.errors import OperationFailed, StaleStreamVersion, UsageError
from vault.jobs.commands import JobCommand
from vault.journal import Journal
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs
from vault.paths import ensure_private_dir
from vault.secrets import resolve_secret

if TYPE_CHECKING:  # huey (and redis with it) is imported when a queue is opened: a
    # command that never queues anything starts without them
    from huey import Huey
    from huey.api import TaskWrapper

HUEY_NAME = "vault"
_FAILED = {"backup": ev.BackupFailed, "restore": ev.RestoreFailed, "verify": ev.VerifyFailed,
           "prune": ev.PruneFailed}


class QueueUnavailable(OperationFailed):
    """the job queue at {where} is unavailable: {detail}"""


class JobNotFound(UsageError):
    """no job {job_id} in the journal"""


class JobNotCancellable(OperationFailed):
    """job {job_id} is {status}: only a queued job can be cancelled"""


def build_huey(config: VaultConfig, *, immediate: bool = False) -> Huey:
    """The Huey instance for `config.queue_url()`; `immediate` runs tasks in the caller."""
    from huey import MemoryHuey, RedisHuey, SqliteHuey

    if immediate:
        return MemoryHuey(HUEY_NAME, results=False, immediate=True)
    url = config.queue_url()
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = Path(parts.path)
        ensure_private_dir(path.parent)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        return SqliteHuey(HUEY_NAME, filename=str(path), results=False, timeout=30)
    import redis  # the client is only needed for a redis queue

    password = None
    if config.queue.password is not None:
        password = str(resolve_secret(config.queue.password, "queue password"))
    pool = redis.ConnectionPool.from_url(url, password=password)
    return RedisHuey(HUEY_NAME, results=False, connection_pool=pool)


def queued_events(command: JobCommand, *, delay: float = 0) -> list[tuple[str, ev.Event]]:
    """What submitting `command` journals: its request (first attempt) and `JobQueued`.

    A caller that journals them in a transaction of its own and then calls
    `JobQueue.enqueue` loses nothing to a crash in between: a job `queued` in the journal
    without a message on the queue is queued again by the worker (`requeue_lost`)."""
    items: list[tuple[str, ev.Event]] = []
    if command.attempt == 1:
        items.append((command.job_id, command.requested_event()))
    items.append((command.job_id, ev.JobQueued(
        job_id=command.job_id, kind=command.kind, attempt=command.attempt,
        summary=command.summary(), delay_seconds=delay,
        command=command.model_dump(mode="json"))))
    return items


def queue_location(config: VaultConfig) -> str:
    """The queue URL without any user or password, fit for messages."""
    parts = urlsplit(config.queue_url())
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class JobQueue:
    """The Huey instance with vault's task registered on it."""

    def __init__(self, huey: Huey, where: str = "memory",
                 config: VaultConfig | None = None) -> None:
        from vault.jobs.tasks import register

        self.huey = huey
        self.where = where
        self.task: TaskWrapper = register(huey, config)

    @classmethod
    def from_config(cls, config: VaultConfig, *, immediate: bool = False) -> JobQueue:
        return cls(build_huey(config, immediate=immediate),
                   "memory" if immediate else queue_location(config), config)

    def check(self) -> None:
        """Fail now, clearly, if the queue cannot be reached (a Redis server down)."""
        try:
            self.huey.pending_count()
        except Exception as exc:  # redis.ConnectionError, sqlite3.Error, ...
            raise QueueUnavailable(str(exc), where=self.where) from exc

    def submit(self, journal: Journal, command: JobCommand, *, delay: float = 0) -> str:
        """Journal the request (first attempt) and `JobQueued`, then enqueue; the job id."""
        journal.append_many(queued_events(command, delay=delay))
        try:
            self.enqueue(command, delay=delay)
        except Exception as exc:  # a broken queue: the job must not sit "queued" forever
            journal.append(command.job_id, _FAILED[command.kind](
                job_id=command.job_id, error_kind="QueueUnavailable", message=str(exc)))
            raise QueueUnavailable(str(exc), where=self.where) from exc
        return command.job_id

    def enqueue(self, command: JobCommand, *, delay: float = 0) -> None:
        """Put the message on the queue (no journal event): the Huey task id is the job id."""
        data = command.model_dump(mode="json")
        if delay:
            self.task.schedule(args=(data,), delay=delay, id=command.job_id)
        else:
            self.huey.enqueue(self.task.s(data, id=command.job_id))

    def waiting_ids(self) -> set[str]:
        """Job ids with a message on the queue, due now or scheduled for later."""
        return {str(t.id) for t in [*self.huey.pending(), *self.huey.scheduled()]}

    def cancel(self, journal: Journal, job_id: str) -> None:
        """Cancel a queued job: journal `JobCancelled` first, then revoke the Huey task.

        The journal decides the race with a worker taking the job: both append with the
        stream version they read, so exactly one of `JobCancelled` and `JobClaimed` lands.
        """
        rows = read_jobs(journal.path, job_id=job_id)
        if not rows:
            raise JobNotFound(job_id=job_id)
        stream = journal.stream(job_id)
        status = rows[0]["status"]
        if status not in ("queued", "requested") or not stream:
            raise JobNotCancellable(job_id=job_id, status=status)
        try:
            journal.append(job_id, ev.JobCancelled(job_id=job_id, kind=rows[0]["kind"]),
                           expected_version=stream[-1].stream_version)
        except StaleStreamVersion as exc:
            raise JobNotCancellable(job_id=job_id, status="being taken by a worker") from exc
        self.huey.revoke_by_id(job_id, revoke_once=True)

