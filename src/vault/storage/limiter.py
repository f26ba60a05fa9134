"""A bandwidth limit on storage traffic, as restic's ``backend/limiter`` and its
``--limit-upload`` / ``--limit-download`` options (KiB/s).

One token bucket per direction is shared by every worker thread of the repository, so the
limit holds for the whole process, not per thread. Only object bytes count — what ``save``
sends and ``load`` brings back; listings, ``stat``, ``exists`` and removals are a few
hundred bytes each and pass unthrottled, so a limited backup still starts at once.

The bucket lends: a caller takes what it needs at once, going into debt, and sleeps until
the debt is paid, so a 16 MiB pack through a 1 MiB/s limit waits about 16 s (before the
upload for saves, after the download for loads) and the next caller waits behind it.
Whatever the pattern of calls, after t seconds at most ``burst + rate * t`` bytes have
passed — the property tests/unit/test_storage_limiter.py measures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from vault.storage.base import ObjectKind, Storage
from vault.storage.forwarding import ForwardingStorage

#: the most a bucket holds after an idle spell: one second of traffic, at least 64 KiB, so
#: small objects pass at once while a sustained stream runs at the rate
MIN_BURST = 64 << 10


class TokenBucket:
    """``rate`` bytes a second with at most ``burst`` saved up; thread-safe."""

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(float(MIN_BURST), rate) if burst is None else burst
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, amount: int) -> float:
        """Spend ``amount`` bytes and wait until the bucket is out of debt; the wait."""
        if amount <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= amount
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


def kib_per_second(limit_kib: int | None) -> TokenBucket | None:
    """The bucket for a ``--limit-*`` value in KiB/s (None or 0: no limit)."""
    return TokenBucket(limit_kib * 1024.0) if limit_kib else None


class LimitedStorage(ForwardingStorage):
    """A Storage whose saves and loads share the bandwidth of ``upload``/``download``."""

    def __init__(self, inner: Storage, upload: TokenBucket | None,
                 download: TokenBucket | None) -> None:
        super().__init__(inner)
        self.upload = upload
        self.download = download

    def _sent(self, kind: ObjectKind, data: bytes | bytearray | memoryview) -> None:
        # A lock's heartbeat never queues behind packs: at a low limit the wait could pass
        # its lease, and the backup would lose its lock (a few hundred bytes per beat).
        if self.upload is not None and kind != "locks":
            self.upload.take(len(data))

    def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
        self._sent(kind, data)
        self.inner.save(kind, name, data)

    def save_new(self, kind: ObjectKind, name: str,
                 data: bytes | bytearray | memoryview) -> str | None:
        self._sent(kind, data)
        return super().save_new(kind, name, data)

    def replace_if_version(self, kind: ObjectKind, name: str,
                           data: bytes | bytearray | memoryview, version: str) -> str | None:
        self._sent(kind, data)
        return super().replace_if_version(kind, name, data, version)

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        data = self.inner.load(kind, name, offset, length)
        if self.download is not None:
            self.download.take(len(data))
        return data
