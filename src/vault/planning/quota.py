"""Quota decisions, pure: would a backup exceed the quota, did usage cross the threshold.

The operations (vault.operations.quota) measure the stored size, read the journal and
act; everything here takes numbers and returns answers, so every rule is unit-tested.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from vault.errors import QuotaReached
from vault.foundation.units import human_bytes
from vault.repository.snapshot import SnapshotSummary

#: what the journal last said about a repository's usage: StorageLow or StorageRecovered
LastStorageEvent = Literal["StorageLow", "StorageRecovered"] | None


@dataclass(frozen=True)
class StorageUsage:
    """A repository's stored size against its quota (None: no quota configured)."""

    used: int
    quota: int | None
    warn_percent: float
    #: when `used` was measured (remembered figures, operations/usage_figures.py); None: now
    measured_at: datetime | None = None

    @property
    def percent(self) -> float | None:
        if not self.quota:
            return None
        return 100.0 * self.used / self.quota

    @property
    def low(self) -> bool:
        """At or above the warning threshold (never without a quota)."""
        percent = self.percent
        return percent is not None and percent >= self.warn_percent


def would_exceed(used: int, estimated_new: int, quota: int | None) -> bool:
    """Whether storing `estimated_new` more bytes would take `used` past `quota`.
    Reaching the quota exactly is allowed; no quota never refuses."""
    return quota is not None and used + max(estimated_new, 0) > quota


#: what a backup commits after its last pack: the index of that pack and the snapshot
COMMIT_ALLOWANCE = 64 << 10
#: index bytes per blob entry (46 sealed bytes, random ids do not compress) plus slack
INDEX_BYTES_PER_BLOB = 64


@dataclass
class QuotaGuard:
    """The hard quota of one backup: every pack is admitted before it is written, so the
    repository never passes `quota` (`used` is its size when the backup started).

    Each pack is counted with the index entries that will name it, and COMMIT_ALLOWANCE
    stays free for the snapshot; once a pack is refused every later one is too. Thread-safe:
    the saver's worker threads admit their own packs."""

    used: int
    quota: int
    repo: str
    written: int = 0
    stopped: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def admit(self, pack_bytes: int, blobs: int) -> None:
        """Count a pack about to be written, or raise QuotaReached (nothing written)."""
        cost = pack_bytes + blobs * INDEX_BYTES_PER_BLOB
        with self._lock:
            if self.stopped or self.used + self.written + cost + COMMIT_ALLOWANCE > self.quota:
                self.stopped = True
                raise self.reached()
            self.written += cost

    def reached(self) -> QuotaReached:
        return QuotaReached(repo=self.repo, quota=human_bytes(self.quota),
                            used=human_bytes(self.used), written=human_bytes(self.written))


#: the free-space reserve without `free_space_reserve`: 1/32 of the volume, in these bounds
RESERVE_SHARE = 32
RESERVE_MIN = 1 << 20
RESERVE_MAX = 64 << 20


def free_space_reserve(volume_size: int | None, configured: int | None) -> int:
    """Free space a backup leaves besides its estimate: `configured` if set, else 1/32 of
    the volume between 1 and 64 MiB (64 MiB when the volume size is unknown), so a small
    volume can hold a repository and a large one keeps room for the index and snapshot."""
    if configured is not None:
        return configured
    if volume_size is None:
        return RESERVE_MAX
    return min(max(volume_size // RESERVE_SHARE, RESERVE_MIN), RESERVE_MAX)


def threshold_crossing(
    usage: StorageUsage, last: LastStorageEvent
) -> Literal["StorageLow", "StorageRecovered"] | None:
    """The event to journal now, given the usage and the last such event, or None.

    StorageLow once when usage reaches the threshold (not again while it stays there);
    StorageRecovered once when it drops below after a StorageLow. Without a quota there
    is no threshold, so a standing StorageLow is ended by StorageRecovered.
    """
    if usage.low:
        return None if last == "StorageLow" else "StorageLow"
    return "StorageRecovered" if last == "StorageLow" else None


@dataclass(frozen=True)
class GrowthRatios:
    """How read bytes turn into new and stored bytes, learnt from recent snapshots."""

    new_per_read: float
    stored_per_new: float
    read_bytes_per_second: float | None
    snapshots: int

    def stored_for(self, bytes_to_read: int) -> int:
        """The bytes a backup reading `bytes_to_read` is expected to add to storage."""
        return int(bytes_to_read * self.new_per_read * self.stored_per_new)


def growth_ratios(recent: Iterable[SnapshotSummary]) -> GrowthRatios:
    """The ratios of the summaries that read anything; 1.0 (all new, stored as is) when
    there is no history, which errs on the side of refusing."""
    summaries = [s for s in recent if s.bytes_read > 0]
    read = sum(s.bytes_read for s in summaries)
    new = sum(s.bytes_new for s in summaries)
    stored = sum(s.bytes_stored for s in summaries)
    seconds = sum(s.duration_seconds for s in summaries)
    return GrowthRatios(
        new_per_read=new / read if read else 1.0,
        stored_per_new=stored / new if new else 1.0,
        read_bytes_per_second=read / seconds if read and seconds else None,
        snapshots=len(summaries),
    )
