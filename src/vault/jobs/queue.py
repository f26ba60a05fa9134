"""The one Huey instance, built from `[queue]`, and submitting and cancelling jobs on it.

`sqlite://PATH` (the default: `queue.db` in the state dir) is Huey's SqliteStorage: WAL,
a busy timeout and `BEGIN EXCLUSIVE` dequeues, so several worker processes on one host
share it and each message is taken once. `redis://` / `rediss://` is Huey's RedisStorage:
workers on several hosts share one queue. The queue only carries job commands, as JSON
(`vault.jobs.wire`: never a pickle); everything a job does, and its status, is in the
journal. Whoever can write to the queue decides what the worker runs, so the queue file
and its directory must be private (`SharedWritable`), and a Redis queue must ask for a
password, over TLS unless the server is on this host (`InsecureQueue`).
"""

from __future__ import annotations

import ipaddress
import os
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vault.config.model import VaultConfig
from vault.config.secrets import resolve_secret
from vault.errors import OperationFailed, StaleStreamVersion, UsageError
from vault.foundation.paths import ensure_private_dir, refuse_shared_writable
from vault.jobs.commands import JobCommand
from vault.journal import Journal
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs

if TYPE_CHECKING:  # huey (and redis with it) is imported when a queue is opened: a
    # command that never queues anything starts without them
    from huey.api import TaskWrapper

    from vault.jobs.wire import GuardedHuey

HUEY_NAME = "vault"
_FAILED = {"backup": ev.BackupFailed, "restore": ev.RestoreFailed, "verify": ev.VerifyFailed,
           "prune": ev.PruneFailed}


class QueueUnavailable(OperationFailed):
    """the job queue at {where} is unavailable: {detail}"""


class InsecureQueue(UsageError):
    """the Redis queue at {where} {problem}"""


class JobNotFound(UsageError):
    """no job {job_id} in the journal"""


class JobNotCancellable(OperationFailed):
    """job {job_id} is {status}: only a queued job can be cancelled"""


def build_huey(config: VaultConfig, *, immediate: bool = False) -> GuardedHuey:
    """The Huey instance for `config.queue_url()`; `immediate` runs tasks in the caller."""
    from huey.storage import RedisStorage, SqliteStorage

    from vault.jobs.tasks import REGISTERED_TASK
    from vault.jobs.wire import GuardedHuey, JobMessageSerializer

    serializer = JobMessageSerializer(REGISTERED_TASK)
    if immediate:
        return GuardedHuey(HUEY_NAME, results=False, immediate=True, serializer=serializer)
    url = config.queue_url()
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = private_queue_file(Path(parts.path))
        return GuardedHuey(HUEY_NAME, results=False, serializer=serializer,
                           storage_class=SqliteStorage, filename=str(path), timeout=30)
    check_redis_queue(url, has_password=config.queue.password is not None)
    import redis  # the client is only needed for a redis queue

    password = None
    if config.queue.password is not None:
        password = str(resolve_secret(config.queue.password, "queue password"))
    pool = redis.ConnectionPool.from_url(url, password=password)
    return GuardedHuey(HUEY_NAME, results=False, serializer=serializer,
                       storage_class=RedisStorage, connection_pool=pool)


def private_queue_file(path: Path) -> Path:
    """The SQLite queue file, created 0600 in a 0700 directory; an existing one (or its
    WAL files) writable by group or others is refused (`SharedWritable`)."""
    ensure_private_dir(path.parent)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if part.exists():
            refuse_shared_writable(part)
    return path


def check_redis_queue(url: str, *, has_password: bool) -> None:
    """Refuse a Redis queue anyone who reaches the server could write to: one without
    `[queue] password`, or one on another host without TLS (`rediss://`)."""
    parts, where = urlsplit(url), _location(url)
    if not has_password:
        raise InsecureQueue(where=where, problem="has no password: set [queue] password (a "
                            "secret reference; an ACL user goes in the URL, redis://USER@HOST)")
    if parts.scheme != "rediss" and not _loopback(parts.hostname or ""):
        raise InsecureQueue(where=where, problem="is on another host: its [queue] url must "
                            "use TLS (rediss://)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    return _location(config.queue_url())


def _location(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class JobQueue:
    """The Huey instance with vault's task registered on it."""

    def __init__(self, huey: GuardedHuey, where: str = "memory",
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
        self.submit_many(journal, [command], delay=delay)
        return command.job_id

    def submit_many(self, journal: Journal, commands: list[JobCommand], *,
                    delay: float = 0) -> None:
        """`submit` for several jobs: all journaled in one transaction, then enqueued."""
        journal.append_many([item for command in commands
                             for item in queued_events(command, delay=delay)])
        for index, command in enumerate(commands):
            try:
                self.enqueue(command, delay=delay)
            except Exception as exc:  # a broken queue: jobs must not sit "queued" forever
                journal.append_many([(c.job_id, _FAILED[c.kind](
                    job_id=c.job_id, error_kind="QueueUnavailable", message=str(exc)))
                    for c in commands[index:]])
                raise QueueUnavailable(str(exc), where=self.where) from exc

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

