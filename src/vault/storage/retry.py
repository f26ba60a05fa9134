"""Retry transient storage failures, as restic's ``backend/retry`` decorator does.

Wrapping keeps backends simple (they classify an error once, as transient or not) and
keeps callers simple (they never loop). Only errors flagged ``transient`` are retried:
a missing object, a full disk or a refused name fails at once, because waiting will not
change the answer and would only delay the message the user needs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from vault.errors import ObjectNotFound, StorageError
from vault.storage.base import ObjectInfo, ObjectKind, Storage
from vault.storage.forwarding import ForwardingStorage

T = TypeVar("T")

#: called before each pause: (the error, the attempt that failed (1-based), seconds to wait)
RetryNotice = Callable[[StorageError, int, float], None]


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, StorageError) and exc.transient


class RetryingStorage(ForwardingStorage):
    """A Storage that retries the transient failures of ``inner`` with backoff and jitter.

    The conditional writes (``save_new``, ``replace_if_version``) pass through once: a
    retry after a create that did land would read as "someone else has it", so they are
    left to the backend's own retries (obstore's), which know whether the request was sent.
    """

    def __init__(
        self,
        inner: Storage,
        attempts: int = 5,
        base_delay: float = 0.2,
        *,
        max_delay: float = 30.0,
        on_retry: RetryNotice | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        super().__init__(inner)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._on_retry = on_retry
        self._sleep = sleep

    def delay(self, attempt: int) -> float:
        """Pause after failed ``attempt`` (1-based): exponential, capped, jittered.

        Jitter spreads out the retries of many clients that failed together (a server
        restart), so they do not all knock again at the same instant.
        """
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _call(self, operation: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return operation()
            except StorageError as exc:
                self._pause_or_raise(exc, attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pause_or_raise(self, exc: StorageError, attempt: int) -> None:
        """Re-raise ``exc`` if it is permanent or attempts are used up, else wait."""
        if not exc.transient or attempt >= self.attempts:
            raise exc
        pause = self.delay(attempt)
        if self._on_retry is not None:
            self._on_retry(exc, attempt, pause)
        self._sleep(pause)

    def create(self) -> None:
        self._call(self.inner.create)

    def exists(self, kind: ObjectKind, name: str) -> bool:
        return self._call(lambda: self.inner.exists(kind, name))

    def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
        # Safe to repeat: saves are atomic and replace, so a retry after a failure that
        # happened late (say, after the rename) just writes the same bytes again.
        self._call(lambda: self.inner.save(kind, name, data))

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        return self._call(lambda: self.inner.load(kind, name, offset, length))

    def stat(self, kind: ObjectKind, name: str) -> ObjectInfo:
        return self._call(lambda: self.inner.stat(kind, name))

    def list(self, kind: ObjectKind) -> Iterator[ObjectInfo]:
        """List, restarting after a transient failure without repeating what was yielded."""
        seen: set[str] = set()
        for attempt in range(1, self.attempts + 1):
            try:
                for info in self.inner.list(kind):
                    if info.name not in seen:
                        seen.add(info.name)
                        yield info
                return
            except StorageError as exc:
                self._pause_or_raise(exc, attempt)

    def remove(self, kind: ObjectKind, name: str) -> None:
        tried = False

        def attempt() -> None:
            nonlocal tried
            try:
                self.inner.remove(kind, name)
            except ObjectNotFound:
                # After a transient failure the earlier attempt may have removed it
                # after all; only the first attempt's "not found" is the caller's news.
                if not tried:
                    raise
            finally:
                tried = True

        self._call(attempt)

    def free_space(self) -> int | None:
        return self._call(self.inner.free_space)

    def volume_size(self) -> int | None:
        return self._call(self.inner.volume_size)

    def close(self) -> None:
        self.inner.close()
