"""The last whole objects read, for a server that answers a ranged GET with all of it.

rclone serve s3 sends the whole object (status 200) for a `Range` request. A restore reads
each pack in pieces of a few MiB, so without this every piece would download the whole
pack again (measured: 8.8x the repository's size for one restore, docs/performance.md).
Only immutable objects belong here — packs, named by the hash of what they hold — so a
kept copy can never be stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

#: at most this many bytes kept (a few packs: one per restore thread at the default size)
BUDGET = 128 << 20


class RecentObjects:
    """Whole objects by key, the least recently used dropped past `budget` bytes."""

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = budget
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str, fetch: Callable[[], bytes]) -> bytes:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        data = fetch()  # outside the lock: other threads read other packs meanwhile
        if len(data) <= self.budget:
            with self._lock:
                if key not in self._kept:
                    self._kept[key] = data
                    self._size += len(data)
                while self._size > self.budget:
                    _, dropped = self._kept.popitem(last=False)
                    self._size -= len(dropped)
        return data

    def forget(self, key: str) -> None:
        """Drop `key`: what was kept did not hold the range asked for (a truncated read),
        so the next read fetches it again."""
        with self._lock:
            dropped = self._kept.pop(key, None)
            if dropped is not None:
                self._size -= len(dropped)
