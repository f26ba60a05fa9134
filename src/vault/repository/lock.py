"""Repository locks: shared for backup/restore/verify, exclusive for forget/prune/key changes.

A lock is a small plain-JSON object in the storage kind "locks" (no secrets: anyone who
can list the repository may see who holds it). Protocol, as in restic, but self-healing:

1. write our own lock object, then list all locks;
2. remove every *stale* lock found (heartbeat older than its lease, or same host and the
   process is gone) and report it in ``stale_removed`` so the caller can journal it;
3. if a live conflicting lock remains (anything vs exclusive), remove ours, poll until
   ``wait_seconds`` is spent, then raise ``RepositoryLocked`` naming the holder;
4. while held, a daemon thread rewrites the heartbeat every ``heartbeat_seconds``.

Stale locks are removed without asking because a forgotten lock silently stops every
scheduled job after it (the failure restic and borg users know); the lease makes that
safe across hosts and the pid probe makes it immediate on the same host.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal

from vault.errors import ObjectNotFound, RepositoryError, RepositoryLocked, StorageError
from vault.foundation.actor import current_actor
from vault.foundation.processes import process_alive, process_start_time, this_pid_namespace
from vault.storage.base import ConditionalCreate, Storage

log = logging.getLogger(__name__)

LockState = Literal["active", "stale", "unreadable"]
#: answers "is this pid (started at that time, if known) alive on this host?"; tests pass
#: a table's answer instead
ProcessProbe = Callable[[int, int | None], bool]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON_FIELDS = (
    "lock_id", "exclusive", "host", "pid", "user", "created", "heartbeat",
    "lease_seconds", "operation", "pid_namespace", "pid_started",
)  # fmt: skip


class LockLost(RepositoryError):
    """repository {repo}: lock {lock_id} was lost ({detail}); stop before changing anything"""


@dataclass(frozen=True)
class LockInfo:
    """One lock object's content, plus its ``state`` as judged when it was read."""

    lock_id: str
    exclusive: bool
    host: str
    pid: int
    user: str
    created: datetime
    heartbeat: datetime
    lease_seconds: float
    operation: str
    #: the pid namespace the pid belongs to; two containers may share a host name but a
    #: pid from one means nothing in the other, so the pid probe needs both to match
    pid_namespace: str | None = None
    #: the holder's start time (clock ticks after boot), so a reused pid is not taken
    #: for the holder; None where unknown (no /proc, or a lock from an older vault)
    pid_started: int | None = None
    state: LockState = "active"

    @property
    def holder(self) -> str:
        if self.state == "unreadable":
            return f"an unreadable lock object (locks/{self.lock_id})"
        return f"{self.user}@{self.host} pid {self.pid} ({self.operation})"

    def to_json(self) -> bytes:
        record = {key: value for key, value in asdict(self).items() if key in _JSON_FIELDS}
        record["created"] = self.created.isoformat()
        record["heartbeat"] = self.heartbeat.isoformat()
        return json.dumps(record, sort_keys=True).encode()

    @classmethod
    def from_json(cls, lock_id: str, data: bytes) -> LockInfo:
        """Parse a lock object; unknown keys are ignored so newer vaults can add fields."""
        record = json.loads(data)
        if not isinstance(record, dict) or record.get("lock_id") != lock_id:
            raise ValueError("not a lock object for this id")
        return cls(
            lock_id=lock_id,
            exclusive=_typed(record, "exclusive", bool),
            host=_typed(record, "host", str),
            pid=_typed(record, "pid", int),
            user=_typed(record, "user", str),
            created=_parse_time(_typed(record, "created", str)),
            heartbeat=_parse_time(_typed(record, "heartbeat", str)),
            lease_seconds=float(_typed(record, "lease_seconds", (int, float))),
            operation=_typed(record, "operation", str),
            pid_namespace=_optional_str(record, "pid_namespace"),
            pid_started=_optional_int(record, "pid_started"),
        )


def _typed(record: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = record[key]
    # bool is an int subclass: a pid of `true` must not pass as 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"lock field {key!r} has the wrong type")
    return value


def _optional_str(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"lock field {key!r} has the wrong type")
    return value


def _optional_int(record: dict[str, Any], key: str) -> int | None:
    return None if record.get(key) is None else _typed(record, key, int)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _unreadable(lock_id: str) -> LockInfo:
    return LockInfo(
        lock_id=lock_id, exclusive=True, host="", pid=0, user="", created=_EPOCH,
        heartbeat=_EPOCH, lease_seconds=0.0, operation="", state="unreadable",
    )  # fmt: skip


# --- judging staleness ------------------------------------------------------------------


def is_stale(
    info: LockInfo,
    now: datetime,
    this_host: str,
    *,
    this_pid_namespace: str | None = None,
    pid_alive: ProcessProbe = process_alive,
) -> bool:
    """Whether ``info`` no longer protects anything, judged at ``now`` from ``this_host``.

    Stale when the heartbeat is older than the lease (the holder stopped beating: dead,
    frozen or cut off), or when the holder ran on this host, in this pid namespace, and
    its process is gone (`vault.foundation.processes`: a reused pid is not the holder). Pure apart
    from ``pid_alive``, which tests replace.
    A heartbeat in the future (clock skew) is never stale by age.
    """
    if info.state == "unreadable":
        return False  # cannot judge it, so never break it automatically
    if now - info.heartbeat > timedelta(seconds=info.lease_seconds):
        return True
    same_processes = info.host == this_host and info.pid_namespace == this_pid_namespace
    return same_processes and not pid_alive(info.pid, info.pid_started)


# --- reading locks ----------------------------------------------------------------------


def _read_locks(storage: Storage) -> list[LockInfo]:
    locks: list[LockInfo] = []
    for obj in storage.list("locks"):
        try:
            data = storage.load("locks", obj.name)
        except ObjectNotFound:
            continue  # released between list and load
        try:
            locks.append(LockInfo.from_json(obj.name, data))
        except (ValueError, KeyError, TypeError):
            locks.append(_unreadable(obj.name))
    return locks


def list_locks(storage: Storage) -> list[LockInfo]:
    """Every lock in the repository, oldest first, each with its current ``state``."""
    now, host, namespace = _utcnow(), socket.gethostname(), this_pid_namespace()
    judged = [
        replace(info, state="stale")
        if is_stale(info, now, host, this_pid_namespace=namespace)
        else info
        for info in _read_locks(storage)
    ]
    return sorted(judged, key=lambda info: (info.created, info.lock_id))


def break_lock(storage: Storage, lock_id: str) -> None:
    """Remove a lock whatever its state: the manual override (``vault unlock --force``)."""
    storage.remove("locks", lock_id)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- holding a lock ---------------------------------------------------------------------


class RepositoryLock:
    """A held lock; use ``acquire`` (or ``with RepositoryLock.acquire(...) as lock:``)."""

    def __init__(
        self, storage: Storage, info: LockInfo, heartbeat_seconds: float,
        stale_removed: list[LockInfo],
    ) -> None:  # fmt: skip
        self.storage = storage
        self.info = info
        self.heartbeat_seconds = heartbeat_seconds
        #: stale locks this acquisition removed, for the caller to journal
        self.stale_removed = stale_removed
        self._stop = threading.Event()
        self._lost_reason: str | None = None
        self._last_beat = time.monotonic()
        self._released = False
        #: our lock object's version tag where writes can be conditional (S3's ETag)
        self._version: str | None = None
        self._thread = threading.Thread(
            target=self._beat, name=f"vault-lock-{info.lock_id[:8]}", daemon=True
        )

    @classmethod
    def acquire(
        cls,
        storage: Storage,
        *,
        exclusive: bool,
        operation: str,
        lease_seconds: float = 300,
        heartbeat_seconds: float | None = None,
        wait_seconds: float = 0,
        poll_seconds: float = 1.0,
    ) -> RepositoryLock:
        """Take a lock or raise ``RepositoryLocked`` once ``wait_seconds`` have passed."""
        beat = lease_seconds / 10 if heartbeat_seconds is None else heartbeat_seconds
        if not 0 < beat < lease_seconds:
            raise ValueError("need 0 < heartbeat_seconds < lease_seconds")
        mine = _new_lock(exclusive, operation, lease_seconds)
        deadline = time.monotonic() + wait_seconds
        removed: dict[str, LockInfo] = {}
        while True:
            mine = replace(mine, heartbeat=_utcnow())
            conflicts, version = _try_once(storage, mine, removed)
            if not conflicts:
                lock = cls(storage, mine, beat, list(removed.values()))
                lock._version = version
                lock._thread.start()
                return lock
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                first = conflicts[0]
                since = "unknown" if first.state == "unreadable" else _iso(first.created)
                raise RepositoryLocked(
                    repo=storage.location,
                    holder=first.holder,
                    since=since,
                    # journal these even though we failed: they are gone all the same
                    stale_removed=list(removed.values()),
                )
            # Jitter keeps two waiting exclusive lockers from colliding in lockstep.
            time.sleep(min(remaining, poll_seconds * random.uniform(0.5, 1.5)))

    # --- the heartbeat ------------------------------------------------------------------

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            if not self._refresh():
                return

    def _refresh(self) -> bool:
        """Rewrite the heartbeat; False once the lock is lost and beating must stop."""
        if self._version is not None:
            return self._refresh_conditionally()
        try:
            if not self.storage.exists("locks", self.info.lock_id):
                # Someone judged us stale (we were frozen past the lease) and removed the
                # lock; writing it back could overlap a holder that has since come in.
                return self._lose("another process removed it as stale")
            self.info = replace(self.info, heartbeat=_utcnow())
            self.storage.save("locks", self.info.lock_id, self.info.to_json())
            self._last_beat = time.monotonic()
        except StorageError as exc:
            log.warning("lock %s: heartbeat failed: %s", self.info.lock_id[:8], exc)
            if time.monotonic() - self._last_beat > self.info.lease_seconds:
                return self._lose(f"no heartbeat for longer than the lease: {exc}")
        return True

    def _refresh_conditionally(self) -> bool:
        """Rewrite the heartbeat only if the object is still the one we wrote (If-Match):
        one request, and no window in which a lock removed as stale could be written back
        (which the exists-then-save of other backends leaves open)."""
        assert isinstance(self.storage, ConditionalCreate) and self._version is not None
        beat = replace(self.info, heartbeat=_utcnow())
        try:
            version = self.storage.replace_if_version(
                "locks", beat.lock_id, beat.to_json(), self._version)
        except StorageError as exc:
            log.warning("lock %s: heartbeat failed: %s", self.info.lock_id[:8], exc)
            if time.monotonic() - self._last_beat > self.info.lease_seconds:
                return self._lose(f"no heartbeat for longer than the lease: {exc}")
            return True
        if version is None:
            return self._lose("another process removed or replaced it as stale")
        self.info, self._version, self._last_beat = beat, version, time.monotonic()
        return True

    def _lose(self, reason: str) -> bool:
        self._lost_reason = reason
        log.error("lock %s lost: %s", self.info.lock_id[:8], reason)
        return False

    @property
    def lost(self) -> bool:
        return self._lost_reason is not None

    def check(self) -> None:
        """Raise ``LockLost`` if the lock can no longer be trusted; call before commits."""
        if self._lost_reason is not None:
            raise LockLost(
                repo=self.storage.location, lock_id=self.info.lock_id, detail=self._lost_reason
            )

    # --- releasing ----------------------------------------------------------------------

    def release(self) -> None:
        """Stop the heartbeat and remove the lock object; a second call does nothing."""
        if self._released:
            return
        self._released = True
        self._stop.set()
        if self._thread.is_alive():
            # Wait for a save in flight, or it could write the lock back after removal.
            self._thread.join(timeout=self.info.lease_seconds)
        # Already gone (removed as stale by someone else) means nothing left to release.
        _remove_quietly(self.storage, self.info.lock_id)

    def __enter__(self) -> RepositoryLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.release()
        except StorageError as release_error:
            if exc is None:
                raise
            # Keep the original error in front; a leftover lock goes stale on its own.
            log.warning("could not remove lock %s: %s", self.info.lock_id[:8], release_error)


def _new_lock(exclusive: bool, operation: str, lease_seconds: float) -> LockInfo:
    actor = current_actor()
    now = _utcnow()
    return LockInfo(
        lock_id=secrets.token_hex(32),
        exclusive=exclusive,
        host=socket.gethostname(),
        pid=os.getpid(),
        user=actor.user,
        created=now,
        heartbeat=now,
        lease_seconds=float(lease_seconds),
        operation=operation,
        pid_namespace=this_pid_namespace(),
        pid_started=process_start_time(os.getpid()),
    )


def _try_once(
    storage: Storage, mine: LockInfo, removed: dict[str, LockInfo]
) -> tuple[list[LockInfo], str | None]:
    """Write our lock, sweep stale ones, and return live conflicts (ours then removed) and
    our lock object's version tag (None where the backend has no conditional writes)."""
    try:
        version = _save_new_lock(storage, mine)
        conflicts = _sweep(storage, mine, removed)
    except BaseException:
        # Never leave our own lock behind on the way out; the original error matters more
        # than a failure to clean up (a leftover goes stale by itself).
        with contextlib.suppress(StorageError):
            storage.remove("locks", mine.lock_id)
        raise
    if conflicts:
        _remove_quietly(storage, mine.lock_id)
    return conflicts, version


def _save_new_lock(storage: Storage, mine: LockInfo) -> str | None:
    """Write our new lock object, with a create-only PUT where the server enforces one, so
    a lock is never written over an object that is already there (whatever wrote it).
    Returns the object's version tag there, for the heartbeat's conditional rewrites."""
    if isinstance(storage, ConditionalCreate) and storage.enforces_conditional_put():
        version = storage.save_new("locks", mine.lock_id, mine.to_json())
        if version is None:
            raise StorageError(where=storage.location,
                               detail=f"lock {mine.lock_id[:8]} already exists")
        return version
    storage.save("locks", mine.lock_id, mine.to_json())
    return None


def _sweep(storage: Storage, mine: LockInfo, removed: dict[str, LockInfo]) -> list[LockInfo]:
    now, host, namespace = _utcnow(), socket.gethostname(), this_pid_namespace()
    conflicts: list[LockInfo] = []
    for other in _read_locks(storage):
        if other.lock_id == mine.lock_id:
            continue
        if is_stale(other, now, host, this_pid_namespace=namespace):
            _remove_quietly(storage, other.lock_id)  # a racing acquirer may beat us to it
            removed[other.lock_id] = replace(other, state="stale")
        elif mine.exclusive or other.exclusive:
            conflicts.append(other)
    return sorted(conflicts, key=lambda info: info.created)


def _remove_quietly(storage: Storage, lock_id: str) -> None:
    with contextlib.suppress(ObjectNotFound):
        storage.remove("locks", lock_id)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
