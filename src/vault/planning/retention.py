"""Retention: which snapshots a policy keeps, and the reasons it keeps each one.

`apply_policy` is pure: it takes snapshot references, a policy and the current time and
returns a plan; `vault forget --keep-*` executes the plan. The rules follow restic's
`forget` policy (internal/data/snapshot_policy.go), described in docs/retention.md:

- snapshots are grouped (by default by host and sorted paths) and each group gets the
  policy on its own;
- within a group, newest first, each bucket rule (last, hourly, daily, weekly, monthly,
  yearly) keeps the newest snapshot of each of the last N buckets that have a snapshot,
  -1 meaning every bucket; buckets are calendar units in the policy's timezone;
- keep-within keeps everything at most D older than the group's newest snapshot;
  keep-tag keeps snapshots carrying any of the tags;
- a snapshot is kept when any rule keeps it.

Safety rules come on top, whatever the policy says: a policy with no rule keeps
everything (a forgotten flag must not delete a whole repository); a pre-restore safety
copy is kept while its hold (`pre_restore_until`) lasts; what a snapshot holds (its
`selection`: entity ids, tables, filters) is part of its group, so a filtered snapshot
never counts toward keeping or losing the full ones; the newest complete snapshot of each
source (per host and selection) is kept unless `allow_empty`; and the members of a backup group
(one restore point) are kept or forgotten together: one kept member keeps them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vault.config.types import format_duration, parse_duration
from vault.repository.snapshot import entity_selection, selection_key, source_name

if TYPE_CHECKING:
    from vault.config.model import Retention
    from vault.repository.snapshot import Snapshot

__all__ = [
    "EMPTY_POLICY_REASON",
    "GROUP_REASON",
    "LAST_COMPLETE_REASON",
    "NOT_KEPT_REASON",
    "PRE_RESTORE_REASON",
    "Decision",
    "GroupPlan",
    "RetentionPlan",
    "RetentionPolicy",
    "SnapshotRef",
    "apply_policy",
    "format_duration",
    "parse_keep_within",
]

UNLIMITED = -1
EMPTY_POLICY_REASON = "empty policy keeps everything"
PRE_RESTORE_REASON = "pre-restore safety copy"
PRE_RESTORE_TAG = "pre-restore"
PRE_RESTORE_KEEP = timedelta(hours=24)
NOT_KEPT_REASON = "no rule keeps it"
LAST_COMPLETE_REASON = "last complete snapshot of {source}"
GROUP_REASON = "member of group {group}, kept whole"
_GROUP_FIELDS = ("host", "paths")


def _label(rule: str) -> str:
    return "latest" if rule == "last" else rule  # "keep 5 latest snapshots"


def _utc(time: datetime) -> datetime:
    # Arithmetic and comparisons between times of one zone use the wall clock (and ignore
    # `fold`); in UTC they are exact whatever zone the caller's times were in.
    return time.astimezone(UTC)


def _require_aware(value: datetime, what: str) -> None:
    # A naive time would land in the wrong bucket by the machine's UTC offset.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value.isoformat()}")


@dataclass(frozen=True)
class SnapshotRef:
    """What retention needs to know about a snapshot, and nothing else."""

    id: str
    time: datetime
    host: str
    paths: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()
    pre_restore_until: datetime | None = None
    source: str = ""  # the source it is of (host + source name one source)
    selection: str = ""  # what it holds of the source ("" = no narrowing)
    complete: bool = False  # no entity narrowing, finished without problems
    group_id: str | None = None  # backed up with other sources as one restore point

    def __post_init__(self) -> None:
        _require_aware(self.time, f"snapshot {self.id} time")
        if self.pre_restore_until is not None:
            _require_aware(self.pre_restore_until, f"snapshot {self.id} pre_restore_until")
        # Accept lists and sets from callers; store the immutable forms.
        object.__setattr__(self, "paths", tuple(self.paths))
        object.__setattr__(self, "tags", frozenset(self.tags))

    @classmethod
    def from_snapshot(
        cls, snapshot: Snapshot, *, pre_restore_until: datetime | None = None
    ) -> SnapshotRef:
        """The reference for a loaded snapshot (its `id` must be filled in). A restore's
        safety copy (tag `pre-restore`) is kept 24 hours whatever the policy says."""
        safety_copy = PRE_RESTORE_TAG in snapshot.tags
        if pre_restore_until is None and safety_copy:
            pre_restore_until = snapshot.time + PRE_RESTORE_KEEP
        return cls(
            id=snapshot.id,
            time=snapshot.time,
            host=snapshot.host,
            paths=tuple(snapshot.paths),
            tags=frozenset(snapshot.tags),
            pre_restore_until=pre_restore_until,
            source=source_name(snapshot),
            selection=selection_key(snapshot),
            complete=(snapshot.status == "completed" and not safety_copy
                      and entity_selection(snapshot) is None),
            group_id=snapshot.group_id,
        )


@dataclass(frozen=True)
class RetentionPolicy:
    """Which snapshots to keep. None or 0 switches a rule off; -1 means every bucket."""

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: timedelta | None = None
    keep_tags: frozenset[str] = frozenset()
    timezone: str = "UTC"  # the zone whose calendar draws the bucket boundaries

    def __post_init__(self) -> None:
        for name, count in self.counts():
            if count is not None and count < UNLIMITED:
                raise ValueError(f"keep_{name} must be -1 (unlimited) or more, not {count}")
        if self.keep_within is not None and self.keep_within < timedelta(0):
            raise ValueError(f"keep_within must not be negative, not {self.keep_within}")
        object.__setattr__(self, "keep_tags", frozenset(self.keep_tags))
        self.zone()  # fail now on an unknown zone, not halfway through a forget

    @classmethod
    def from_config(cls, retention: Retention, timezone: str = "UTC") -> RetentionPolicy:
        return cls(
            keep_last=retention.keep_last,
            keep_hourly=retention.keep_hourly,
            keep_daily=retention.keep_daily,
            keep_weekly=retention.keep_weekly,
            keep_monthly=retention.keep_monthly,
            keep_yearly=retention.keep_yearly,
            keep_within=retention.keep_within,
            keep_tags=frozenset(retention.keep_tags),
            timezone=timezone,
        )

    def counts(self) -> list[tuple[str, int | None]]:
        """The bucket rules in evaluation order: (name, count)."""
        return [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ]

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None

    def is_empty(self) -> bool:
        """True when no rule is switched on; such a policy keeps every snapshot."""
        return (
            all(not count for _, count in self.counts())
            and not self.keep_within
            and not self.keep_tags
        )

    def describe(self) -> str:
        """One line for humans: "keep 7 daily, 4 weekly snapshots and ..."."""
        if self.is_empty():
            return "keep everything (no rule given)"
        counted = [
            f"all {_label(name)}" if count == UNLIMITED else f"{count} {_label(name)}"
            for name, count in self.counts()
            if count
        ]
        parts = [f"{', '.join(counted)} snapshots"] if counted else []
        if self.keep_within:
            parts.append(f"every snapshot within {format_duration(self.keep_within)} of the newest")
        if self.keep_tags:
            tags = ", ".join(repr(tag) for tag in sorted(self.keep_tags))
            parts.append(f"every snapshot tagged {tags}")
        return "keep " + " and ".join(parts)


@dataclass(frozen=True)
class Decision:
    """One snapshot and why it is kept (or, for a removed one, why not)."""

    snapshot: SnapshotRef
    reasons: list[str]


@dataclass(frozen=True)
class GroupPlan:
    """The plan for one group; host/paths are None when the grouping ignores them."""

    key: str
    host: str | None
    paths: tuple[str, ...] | None
    keep: list[Decision]
    remove: list[Decision]
    selection: str = ""


@dataclass(frozen=True)
class RetentionPlan:
    keep: list[Decision]
    remove: list[Decision]
    groups: dict[str, GroupPlan]


def parse_keep_within(text: str) -> timedelta:
    """ "1y6m3d12h", "30d", "2w", "36h" -> timedelta (vault.config.types.parse_duration: a month
    is 30 days and a year 365, unlike restic's calendar arithmetic; minutes are "min")."""
    return parse_duration(text)


# --- applying the policy --------------------------------------------------------------------

BucketKey = Callable[[datetime], object]

# Keys of calendar buckets for a time already in the policy's zone. `fold` separates the
# two wall-clock hours that share a label when DST ends: each bucket is one real hour.
_BUCKET_KEYS: dict[str, BucketKey] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour, t.fold),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}


def apply_policy(
    snapshots: Sequence[SnapshotRef],
    policy: RetentionPolicy,
    now: datetime,
    *,
    group_by: str = "host,paths",
    allow_empty: bool = False,
    held_groups: frozenset[str] = frozenset(),
) -> RetentionPlan:
    """Split `snapshots` into kept and removed, with reasons, group by group.

    `group_by` is a comma-separated subset of "host" and "paths" ("" = one group); a
    snapshot's selection is always part of its group. Unless `allow_empty`, the newest
    complete snapshot of each source is kept. Backup groups are kept whole, and so are
    those in `held_groups` (groups with members this plan does not judge, which stay).
    Every list is ordered newest first, equal times by id."""
    _require_aware(now, "now")
    now = _utc(now)
    by_host, by_paths = _parse_group_by(group_by)
    members: dict[GroupKey, list[SnapshotRef]] = {}
    for snapshot in snapshots:
        host = snapshot.host if by_host else None
        paths = tuple(sorted(snapshot.paths)) if by_paths else None
        members.setdefault((host, paths, snapshot.selection), []).append(snapshot)
    reasons: dict[str, list[str]] = {}
    for group in members.values():
        ordered = _newest_first(group)
        reasons.update(zip((s.id for s in ordered), _reasons(ordered, policy, now), strict=True))
    if not allow_empty:
        _keep_last_complete(snapshots, reasons)
    _keep_groups_whole(snapshots, reasons, held_groups)
    plans = [_plan_group(key, group, reasons) for key, group in members.items()]
    plans.sort(key=lambda plan: plan.key)
    return RetentionPlan(
        keep=_ordered([d for plan in plans for d in plan.keep]),
        remove=_ordered([d for plan in plans for d in plan.remove]),
        groups={plan.key: plan for plan in plans},
    )


GroupKey = tuple[str | None, tuple[str, ...] | None, str]


def _keep_last_complete(snapshots: Sequence[SnapshotRef], reasons: dict[str, list[str]]) -> None:
    """The newest complete snapshot of each source (per host and selection) stays: a
    policy must not leave a source without a whole copy because an entity backup or a
    failed run came later. Per selection, since a differently filtered run is not the
    same copy, and vault cannot tell which of the two the operator counts on."""
    newest: dict[tuple[str, str, str], SnapshotRef] = {}
    for snapshot in _newest_first(s for s in snapshots if s.complete):
        newest.setdefault((snapshot.host, snapshot.source, snapshot.selection), snapshot)
    for snapshot in newest.values():
        if not reasons[snapshot.id]:
            source = snapshot.source + (f" ({snapshot.selection})" if snapshot.selection else "")
            reasons[snapshot.id].append(LAST_COMPLETE_REASON.format(source=source))


def _keep_groups_whole(snapshots: Sequence[SnapshotRef], reasons: dict[str, list[str]],
                       held_groups: frozenset[str]) -> None:
    """A backup group is one restore point: one kept member keeps every member. Keeping
    only adds, so one pass settles it (and cannot undo the last-complete rule)."""
    kept = {s.group_id for s in snapshots if s.group_id is not None and reasons[s.id]}
    for snapshot in snapshots:
        group = snapshot.group_id
        if group is not None and not reasons[snapshot.id] and (group in kept
                                                               or group in held_groups):
            reasons[snapshot.id].append(GROUP_REASON.format(group=group))


def _parse_group_by(group_by: str) -> tuple[bool, bool]:
    fields = {part.strip() for part in group_by.split(",") if part.strip()}
    unknown = fields.difference(_GROUP_FIELDS)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ValueError(f"cannot group by {names}: use host, paths, both, or nothing")
    return "host" in fields, "paths" in fields


def _group_key(host: str | None, paths: tuple[str, ...] | None, selection: str) -> str:
    parts = []
    if host is not None:
        parts.append(f"host={host}")
    if paths is not None:
        parts.append(f"paths={','.join(paths)}")
    if selection:
        parts.append(f"selection={selection}")
    return " ".join(parts) or "all"


def _newest_first(snapshots: Iterable[SnapshotRef]) -> list[SnapshotRef]:
    by_id = sorted(snapshots, key=lambda s: s.id)
    return sorted(by_id, key=lambda s: _utc(s.time), reverse=True)  # stable: ties stay by id


def _ordered(decisions: list[Decision]) -> list[Decision]:
    by_id = sorted(decisions, key=lambda d: d.snapshot.id)
    return sorted(by_id, key=lambda d: _utc(d.snapshot.time), reverse=True)


def _plan_group(key: GroupKey, snapshots: list[SnapshotRef],
                reasons: dict[str, list[str]]) -> GroupPlan:
    host, paths, selection = key
    ordered = _newest_first(snapshots)
    keep = [Decision(s, reasons[s.id]) for s in ordered if reasons[s.id]]
    remove = [Decision(s, [NOT_KEPT_REASON]) for s in ordered if not reasons[s.id]]
    return GroupPlan(_group_key(host, paths, selection), host, paths, keep, remove, selection)


def _reasons(ordered: list[SnapshotRef], policy: RetentionPolicy, now: datetime) -> list[list[str]]:
    """For each snapshot of one group (newest first), the reasons to keep it; [] = remove."""
    reasons: list[list[str]] = [[] for _ in ordered]
    zone = policy.zone()
    local_times = [snapshot.time.astimezone(zone) for snapshot in ordered]
    for name, count in policy.counts():
        if count:
            for index in _newest_per_bucket(_bucket_keys(name, local_times), count):
                reasons[index].append(f"{name} snapshot")
    if policy.keep_within:
        label = f"within {format_duration(policy.keep_within)}"
        for index in _within(ordered, policy.keep_within, now):
            reasons[index].append(label)
    for index, snapshot in enumerate(ordered):
        reasons[index].extend(f"tagged {tag!r}" for tag in sorted(policy.keep_tags & snapshot.tags))
        if snapshot.pre_restore_until is not None and _utc(snapshot.pre_restore_until) > now:
            reasons[index].append(PRE_RESTORE_REASON)
        if policy.is_empty():
            reasons[index].append(EMPTY_POLICY_REASON)
    return reasons


def _bucket_keys(name: str, local_times: list[datetime]) -> list[object]:
    if name == "last":  # every snapshot is a bucket of its own
        return list(range(len(local_times)))
    bucket_key = _BUCKET_KEYS[name]
    return [bucket_key(t) for t in local_times]


def _newest_per_bucket(keys: list[object], count: int) -> list[int]:
    """Indexes of the first (newest) entry of each of the first `count` distinct runs of
    equal keys; -1 = all of them. Keys of a time-ordered list come in runs, since each
    bucket is one contiguous stretch of time."""
    chosen: list[int] = []
    previous: object = object()
    for index, key in enumerate(keys):
        if count != UNLIMITED and len(chosen) == count:
            break
        if key != previous:
            chosen.append(index)
            previous = key
    return chosen


def _within(ordered: list[SnapshotRef], duration: timedelta, now: datetime) -> list[int]:
    """Indexes of snapshots at most `duration` older than the newest one. As in restic,
    snapshots dated after `now` (a wrong clock) do not count as the newest, so one of them
    cannot push everything else out; if all are in the future, all are kept."""
    times = [_utc(snapshot.time) for snapshot in ordered]
    present = [time for time in times if time <= now]
    if not present:
        return list(range(len(ordered)))
    cutoff = max(present) - duration
    return [index for index, time in enumerate(times) if time >= cutoff]
