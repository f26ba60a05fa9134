"""Progress reporting: a protocol with a no-op default, and a throttled counter.

Work is counted in memory and handed to the reporter at most about once a second (and
once at the end), never per chunk: a journal event or a terminal redraw per chunk would
cost more than the work.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ProgressUpdate:
    phase: str
    bytes_done: int
    bytes_total: int | None
    items_done: int
    items_total: int | None
    rate_bps: float
    eta_seconds: float | None
    current: str | None = None
    final: bool = False


class ProgressReporter(Protocol):
    def report(self, update: ProgressUpdate) -> None: ...


class NullReporter:
    def report(self, update: ProgressUpdate) -> None:
        return None


class MultiReporter:
    def __init__(self, *reporters: ProgressReporter) -> None:
        self.reporters = reporters

    def report(self, update: ProgressUpdate) -> None:
        for r in self.reporters:
            r.report(update)


class ProgressCounter:
    """Thread-safe counters for one phase, forwarded to a reporter at most every `interval`."""

    def __init__(self, reporter: ProgressReporter, phase: str, *, interval: float = 1.0,
                 bytes_total: int | None = None, items_total: int | None = None) -> None:
        self.reporter = reporter
        self.phase = phase
        self.interval = interval
        self.bytes_total = bytes_total
        self.items_total = items_total
        self.bytes_done = 0
        self.items_done = 0
        self.current: str | None = None
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = self._start

    def add(self, nbytes: int = 0, items: int = 0, current: str | None = None) -> None:
        with self._lock:
            self.bytes_done += nbytes
            self.items_done += items
            if current is not None:
                self.current = current
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            self._last = now
            update = self._snapshot(now, final=False)
        self.reporter.report(update)

    def set_totals(self, bytes_total: int | None, items_total: int | None) -> None:
        with self._lock:
            self.bytes_total, self.items_total = bytes_total, items_total

    def finish(self) -> None:
        with self._lock:
            update = self._snapshot(time.monotonic(), final=True)
        self.reporter.report(update)

    def _snapshot(self, now: float, final: bool) -> ProgressUpdate:
        elapsed = max(now - self._start, 1e-6)
        rate = self.bytes_done / elapsed
        eta = None
        if self.bytes_total is not None and rate > 0:
            eta = max(self.bytes_total - self.bytes_done, 0) / rate
        return ProgressUpdate(self.phase, self.bytes_done, self.bytes_total, self.items_done,
                              self.items_total, rate, eta, self.current, final)
