"""What `vault copy` does, decided from the two repositories' snapshot lists alone (pure).

A copy records the id of the snapshot it copies (`Snapshot.original`; a copy of a copy
keeps the first id, as restic does), so a snapshot whose original the destination already
holds is skipped: copying twice, or after a kill, never makes a second copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vault.repository.snapshot import Snapshot, source_name


@dataclass(frozen=True)
class CopyItem:
    snapshot: Snapshot
    #: the destination's copy of it already there, if any (then it is skipped)
    copied_as: str | None = None
    #: (an earlier source snapshot of the same source, its copy in the destination): its
    #: trees map most blob ids without reading the data again (repository/copier.py)
    learn_from: tuple[Snapshot, str] | None = None
    #: the destination's copy of the snapshot's parent, the copy's parent
    parent_copy: str | None = None


@dataclass(frozen=True)
class CopyPlan:
    items: list[CopyItem]

    @property
    def to_copy(self) -> list[CopyItem]:
        return [item for item in self.items if item.copied_as is None]

    @property
    def skipped(self) -> list[CopyItem]:
        return [item for item in self.items if item.copied_as is not None]


def original_id(snapshot: Snapshot) -> str:
    """The id that names a snapshot across every copy of it."""
    return snapshot.original or snapshot.id


def select(snapshots: list[Snapshot], *, since: datetime | None, source: str | None,
           tag: str | None = None) -> list[Snapshot]:
    """`--all` / `--since` narrowed by `--source` (and a tag), oldest first. A restore's
    safety copy (tagged by vault itself) is a snapshot like any other and is copied too."""
    chosen = [s for s in snapshots
              if (since is None or s.time >= since)
              and (source is None or source_name(s) == source)
              and (tag is None or tag in s.tags)]
    return sorted(chosen, key=lambda s: (s.time, s.id))


def after_newest_copy(candidates: list[Snapshot],
                      destination_snapshots: list[Snapshot]) -> list[Snapshot]:
    """The candidates from the newest one the destination holds a copy of on (a
    schedule's `copy_to`): a copy that failed or was killed is made up by the next run,
    and what the destination's own retention forgot is not copied back."""
    copied = {original_id(d) for d in destination_snapshots}
    times = [s.time for s in candidates if original_id(s) in copied]
    if not times:
        return candidates
    newest = max(times)
    return [s for s in candidates if s.time >= newest]


def plan_copy(selected: list[Snapshot], source_snapshots: list[Snapshot],
              destination_snapshots: list[Snapshot]) -> CopyPlan:
    """One item per selected snapshot (each once, oldest first)."""
    copies = {original_id(d): d.id for d in destination_snapshots}
    by_id = {s.id: s for s in source_snapshots}
    unique = {s.id: s for s in selected}
    items = []
    for snapshot in sorted(unique.values(), key=lambda s: (s.time, s.id)):
        parent = by_id.get(snapshot.parent or "")
        items.append(CopyItem(
            snapshot=snapshot, copied_as=copies.get(original_id(snapshot)),
            learn_from=_earlier_copy(snapshot, parent, source_snapshots, copies),
            parent_copy=copies.get(original_id(parent)) if parent else None))
    return CopyPlan(items)


def _earlier_copy(snapshot: Snapshot, parent: Snapshot | None, source_snapshots: list[Snapshot],
                  copies: dict[str, str]) -> tuple[Snapshot, str] | None:
    """The snapshot's parent when it was copied before, else the newest earlier snapshot
    of the same source and host that was."""
    if parent is not None and original_id(parent) in copies:
        return parent, copies[original_id(parent)]
    earlier = [s for s in source_snapshots
               if s.id != snapshot.id and s.time <= snapshot.time and s.host == snapshot.host
               and source_name(s) == source_name(snapshot) and original_id(s) in copies]
    if not earlier:
        return None
    newest = max(earlier, key=lambda s: (s.time, s.id))
    return newest, copies[original_id(newest)]


def copy_of(snapshot: Snapshot, tree: str, parent_copy: str | None) -> Snapshot:
    """The destination's snapshot: the source's, on the copied tree, naming its original."""
    copy = snapshot.model_copy(update={"tree": tree, "parent": parent_copy,
                                       "original": original_id(snapshot)})
    copy.id = ""
    return copy
