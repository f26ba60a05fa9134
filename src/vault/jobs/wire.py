"""What crosses the queue: JSON that names one vault job, never a pickle, never code.

Huey pickles its messages by default, and unpickling runs whatever the bytes say: anyone
who could write to the queue (the SQLite file, a Redis server) could run code as the
worker. vault's queue carries data only. `JobMessageSerializer` (Huey's `serializer` hook)
writes and reads exactly the two shapes vault puts there:

    {"format": "vault-job/1", "id": JOB_ID, "eta": ISO 8601 | null, "command": JobCommand}
    {"format": "vault-revocation/1", "until": ISO 8601 | null, "once": bool}

and raises `MessageRejected` for anything else: a pickle (an older vault's message, or an
injection), other JSON, a command that does not validate as `JobCommand`. `GuardedHuey`
drops a rejected message where Huey takes it off the queue or the schedule, and hands a
`Rejection` (why, where, the raw bytes' size and digest, never their content) to
`on_rejected`; the worker journals it as `JobRejected`. Nothing of it ever runs.

A well-formed message is still only a claim: `admit` (the worker's: the command must be
the one its journal queued, `worker.journal_admission`) may refuse it the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from huey import Huey
from huey.api import Task
from huey.constants import EmptyData
from huey.registry import Message
from huey.serializer import Serializer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from vault.jobs.commands import JobCommand

#: a message larger than this is refused unread (a job command is a few KiB)
MAX_MESSAGE_BYTES = 4 << 20
JOB_FORMAT = "vault-job/1"
REVOCATION_FORMAT = "vault-revocation/1"
Revocation = tuple[datetime | None, bool]
Where = Literal["queue", "schedule", "revocation"]

log = logging.getLogger("vault.jobs")


class MessageRejected(ValueError):
    """A queue message that is not one vault wrote: never run, never unpickled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Rejection:
    """What the journal learns of a rejected message: no byte of its content."""

    where: Where
    reason: str
    size_bytes: int
    sha256: str


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class _JobWire(_Wire):
    format: Literal["vault-job/1"]
    id: str
    eta: datetime | None
    command: JobCommand

    @model_validator(mode="after")
    def _id_is_the_job_id(self) -> _JobWire:
        if self.id != self.command.job_id:
            raise ValueError("the message id is not its command's job id")
        return self


class _RevocationWire(_Wire):
    format: Literal["vault-revocation/1"]
    until: datetime | None
    once: bool = Field(strict=True)


_ANY_WIRE: TypeAdapter[_JobWire | _RevocationWire] = TypeAdapter(
    Annotated[_JobWire | _RevocationWire, Field(discriminator="format")])


def _utc_naive(value: datetime | None) -> datetime | None:
    """Huey (utc=True) compares naive UTC datetimes."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _why(error: ValidationError) -> str:
    """The first problems, by location: pydantic's messages without the input values."""
    parts = [f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}"
             for e in error.errors(include_url=False, include_input=False,
                                   include_context=False)[:3]]
    return "not a vault job message (" + "; ".join(parts)[:400] + ")"


class JobMessageSerializer(Serializer):  # type: ignore[misc]  # huey is untyped
    """JSON in vault's two shapes; `task_name` is the one task a message may name."""

    def __init__(self, task_name: str) -> None:
        super().__init__()
        self.task_name = task_name

    def serialize(self, data: Any) -> bytes:
        if isinstance(data, Message):
            wire: dict[str, Any] = self._job(data)
        elif isinstance(data, tuple) and len(data) == 2:
            until, once = data
            wire = {"format": REVOCATION_FORMAT, "once": bool(once),
                    "until": until.isoformat() if until else None}
        else:
            raise TypeError(f"vault's queue carries jobs and revocations, not {type(data)}")
        return json.dumps(wire, separators=(",", ":")).encode()

    def _job(self, message: Message) -> dict[str, Any]:
        """The wire form of a message vault itself made; anything else is a bug here."""
        extras = [f for f in ("on_complete", "on_error", "chord_config", "expires", "timeout",
                              "priority") if getattr(message, f) is not None]
        if (message.name != self.task_name or extras or message.kwargs
                or message.retries or message.retry_delay or message.retry_backoff
                or len(message.args) != 1):
            raise ValueError(f"not a message vault sends: {message.name} {extras}")
        command = JobCommand.model_validate(message.args[0])
        return {"format": JOB_FORMAT, "id": message.id,
                "eta": message.eta.isoformat() if message.eta else None,
                "command": command.model_dump(mode="json")}

    def deserialize(self, data: bytes) -> Message | Revocation:
        raw = bytes(data)
        if len(raw) > MAX_MESSAGE_BYTES:
            raise MessageRejected(f"{len(raw)} bytes, more than any job message")
        if raw[:1] == b"\x80":
            raise MessageRejected("a pickle (an older vault's message, or code put on the "
                                  "queue): never unpickled")
        try:
            wire = _ANY_WIRE.validate_json(raw)
        except ValidationError as error:
            raise MessageRejected(_why(error)) from None
        if isinstance(wire, _RevocationWire):
            return _utc_naive(wire.until), wire.once
        return Message(id=wire.id, name=self.task_name, eta=_utc_naive(wire.eta), retries=0,
                       retry_delay=0, priority=None, args=(wire.command.model_dump(mode="json"),),
                       kwargs={}, retry_backoff=0)


class GuardedHuey(Huey):  # type: ignore[misc]  # huey is untyped
    """Huey whose every read of the queue goes through `JobMessageSerializer`, dropping
    what it rejects: a rejected message is gone from the queue, reported to `on_rejected`
    once, and neither crashes the consumer nor comes back."""

    serializer: JobMessageSerializer

    def __init__(self, *args: Any, on_rejected: Callable[[Rejection], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_rejected = on_rejected or _log_rejection
        #: why a decoded command may not run (None: it may); the worker sets it
        self.admit: Callable[[JobCommand], str | None] = lambda command: None

    def deserialize_task(self, data: bytes) -> Task:
        message = self.serializer.deserialize(data)
        if not isinstance(message, Message):
            raise MessageRejected("a revocation where a job message belongs")
        return self._registry.create_task(message)

    def dequeue(self) -> Task | None:
        # Past rejected messages at once: a flood of them must not delay a real job by
        # the consumer's idle sleep each.
        while (data := self.storage.dequeue()) is not None:
            task = self._take(data, "queue")
            if task is not None:
                return task
        return None

    def read_schedule(self, timestamp: datetime | None = None) -> list[Task]:
        due = self.storage.read_schedule(timestamp or self._get_timestamp())
        return [task for task in (self._take(data, "schedule") for data in due) if task]

    def _deserialize_all(self, messages: list[bytes]) -> list[Task]:
        """`pending()` / `scheduled()`: a look, nothing is taken; a bad message is
        rejected when a worker takes it."""
        tasks = []
        for data in messages:
            try:
                tasks.append(self.deserialize_task(data))
            except MessageRejected:
                continue
        return tasks

    def _take(self, data: bytes, where: Where) -> Task | None:
        try:
            task = self.deserialize_task(data)
            refusal = self.admit(JobCommand.model_validate(task.args[0]))
        except MessageRejected as rejected:
            refusal = rejected.reason
        except Exception as exc:  # the journal could not be read: never run unchecked
            refusal = f"could not check it against the journal: {type(exc).__name__}"
        if refusal is None:
            return task
        self._reject(data, where, refusal)
        return None

    def _reject(self, data: bytes, where: Where, reason: str) -> None:
        raw = bytes(data)
        rejection = Rejection(where=where, reason=reason, size_bytes=len(raw),
                              sha256=hashlib.sha256(raw).hexdigest())
        try:
            self.on_rejected(rejection)
        except Exception:  # reporting must not stop the consumer; the message is gone
            log.exception("could not record a rejected queue message")

    def is_revoked(self, task: Task, timestamp: datetime | None = None,
                   peek: bool = True) -> bool:
        """Huey's own, except that a revocation vault did not write is dropped (and
        reported) instead of read: whether the job still runs is the journal's call
        (`tasks.claim` skips a cancelled job)."""
        keys = self._revoke_keys(task)
        stored = self.storage.peek_many(keys)
        for key in keys:
            data = stored.get(key, EmptyData)
            try:
                revoked, restore = self._check_revoked(data, timestamp, peek)
            except MessageRejected as rejected:
                self._reject(data, "revocation", rejected.reason)
                self.delete(key)
                continue
            if restore:
                self.delete(key)
            if revoked:
                return True
        return False

    def _check_revoked(self, data: Any, timestamp: datetime | None = None,
                       peek: bool = True) -> tuple[bool, bool]:
        if data is EmptyData:
            return False, False
        revocation = self.serializer.deserialize(data)
        if isinstance(revocation, Message):
            raise MessageRejected("a job message where a revocation belongs")
        revoke_until, revoke_once = revocation
        if revoke_once:
            return True, not peek
        if revoke_until is not None and revoke_until <= (timestamp or self._get_timestamp()):
            return False, not peek
        return True, False


def _log_rejection(rejection: Rejection) -> None:
    log.warning("dropped a queue message (%s, %d bytes, sha256 %s): %s", rejection.where,
                rejection.size_bytes, rejection.sha256[:16], rejection.reason)
