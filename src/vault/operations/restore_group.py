"""A configured group back to one point in time: which snapshot of each member, and the
restore request that puts each back in its own place.

The newest group backup at or before the moment in which every member completed is
chosen (`restore.point_in_time.group_at`); files go back under their own paths, a
database into its own database, each in the mode given (overwrite or merge).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vault.errors import UsageError
from vault.planning.restore_plan import OnConflict
from vault.planning.restore_request import RestoreMode, RestoreRequest
from vault.repository.snapshot import Snapshot
from vault.restore.point_in_time import group_at
from vault.runtime.app import Vault


@dataclass(frozen=True)
class GroupMember:
    name: str
    snapshot: Snapshot
    request: RestoreRequest


@dataclass(frozen=True)
class GroupRestore:
    group: str
    at: datetime
    members: list[GroupMember]

    @property
    def group_id(self) -> str | None:
        return self.members[0].snapshot.group_id


def member_request(snapshot: Snapshot, mode: RestoreMode, on_conflict: OnConflict | None,
                   dry_run: bool) -> RestoreRequest:
    """Put `snapshot` back where it was taken: files under their own paths, a database
    into its own location."""
    if str(snapshot.source.get("type", "files")) == "files":
        return RestoreRequest(snapshot_ref=snapshot.id, target="/", paths=list(snapshot.paths),
                              mode=mode, on_conflict=on_conflict, dry_run=dry_run)
    return RestoreRequest(snapshot_ref=snapshot.id, mode=mode, on_conflict=on_conflict,
                          dry_run=dry_run)


def group_restore_at(vault: Vault, group: str, moment: datetime, mode: RestoreMode | None,
                     on_conflict: OnConflict | None, dry_run: bool) -> GroupRestore:
    """Every member of `group` at `moment`, or a usage error naming why not."""
    if mode not in (RestoreMode.OVERWRITE, RestoreMode.MERGE):
        raise UsageError("restoring a group puts each source back in its own place: give "
                         "--mode overwrite or --mode merge")
    members = [s.name for s in vault.config.group(group)]
    picks = group_at(vault.repository().snapshots(), members, moment)
    if picks is None:
        raise UsageError(f"no backup of group {group!r} at or before {moment.isoformat()} "
                         f"in which all of {', '.join(members)} completed")
    return GroupRestore(group, moment, [
        GroupMember(name, picks[name], member_request(picks[name], mode, on_conflict, dry_run))
        for name in members])
