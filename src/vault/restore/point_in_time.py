"""Point-in-time restores: which snapshot stands for a source at a given moment.

Pure. `snapshot_at` picks, for one source (a configured name, a URL label, or a backed-up
path), the newest completed snapshot taken at or before the moment. `group_at` picks for
several sources the newest *group* in which every one of them completed at or before the
moment, so sources backed up together come back from the same point in time even when a
later group had a member fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vault.repository.snapshot import Snapshot


def names_of(snapshot: Snapshot) -> set[str]:
    """What a snapshot can be called by: its source label and name, and its paths."""
    names = {str(v) for k, v in snapshot.source.items() if k in ("label", "name") and v}
    return names | set(snapshot.paths)


def snapshot_at(snapshots: Sequence[Snapshot], name: str, at: datetime) -> Snapshot | None:
    """The newest completed snapshot of `name` taken at or before `at` (aware)."""
    if at.utcoffset() is None:
        raise ValueError("the moment must carry a time zone")
    found = [s for s in snapshots
             if s.status == "completed" and s.time <= at and name in names_of(s)
             and "pre-restore" not in s.tags]
    return max(found, key=lambda s: (s.time, s.id), default=None)


def group_at(snapshots: Sequence[Snapshot], members: Sequence[str],
             at: datetime) -> dict[str, Snapshot] | None:
    """For each member, its snapshot in the newest group (at or before `at`) in which all
    of them completed; None when no group holds them all."""
    if at.utcoffset() is None:
        raise ValueError("the moment must carry a time zone")
    groups: dict[str, dict[str, Snapshot]] = {}
    times: dict[str, datetime] = {}
    for snapshot in snapshots:
        if snapshot.group_id is None or snapshot.status != "completed":
            continue
        when = snapshot.group_time or snapshot.time
        if when > at:
            continue
        for member in members:
            if member in names_of(snapshot):
                groups.setdefault(snapshot.group_id, {})[member] = snapshot
                times[snapshot.group_id] = when
    complete = [gid for gid, found in groups.items() if set(found) == set(members)]
    if not complete:
        return None
    newest = max(complete, key=lambda gid: (times[gid], gid))
    return groups[newest]
