"""What each configured repository holds, as the journal tells it (pure): the newest
snapshot of each source, for `vault status` with several repositories.

A repository holds the snapshots backed up into it (`BackupCompleted`) and copied into it
(`SnapshotCopied`), less those forgotten (`SnapshotForgotten`). Read from the journal, so
`vault status` needs no passphrase for any repository (snapshots are encrypted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class HeldSnapshot:
    repo_id: str
    snapshot_id: str
    source: str
    time: datetime


@dataclass(frozen=True)
class NewestSnapshot:
    source: str
    snapshot_id: str
    time: datetime


def newest_per_source(held: Iterable[HeldSnapshot], forgotten: set[tuple[str, str]],
                      repo_id: str) -> list[NewestSnapshot]:
    """The newest snapshot of each source in `repo_id`, by source name; `forgotten` holds
    (repo id, snapshot id) pairs."""
    newest: dict[str, HeldSnapshot] = {}
    for snapshot in held:
        if snapshot.repo_id != repo_id or (repo_id, snapshot.snapshot_id) in forgotten:
            continue
        known = newest.get(snapshot.source)
        if known is None or (snapshot.time, snapshot.snapshot_id) > (known.time,
                                                                     known.snapshot_id):
            newest[snapshot.source] = snapshot
    return [NewestSnapshot(s.source, s.snapshot_id, s.time)
            for _name, s in sorted(newest.items())]
