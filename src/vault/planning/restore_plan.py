"""What a restore will do, item by item, decided before anything is written.

Pure: `plan_items` compares what the snapshot holds with what the target holds now (each
side as key -> fingerprint, where equal fingerprints mean equal content) and decides an
action per item. Every source (files, SQLite rows, PostgreSQL rows, MongoDB documents)
plans with it, so `--dry-run` and the real restore can never disagree, and the executor
only carries out the plan it was given.

Modes and conflicts (an item is *in conflict* when both sides hold it and they differ):

=============  =====================  ===================  =========================
mode           only in the snapshot   in both, different   only in the target
=============  =====================  ===================  =========================
overwrite      create                 --on-conflict        delete
               (default: overwrite)
merge          create                 --on-conflict        keep (not in the plan)
               (default: skip)
new-target     create                 (impossible: the target must hold nothing)
=============  =====================  ===================  =========================

A group (a table) whose items cannot be named by a key (NULLs in its primary key, no key
at all) is planned whole by `plan_whole`: it is replaced whole, its rows paired by content
only, and `RestorePlan.whole` says why, so the plan can show it.

Identical items are `skip` ("identical"). `--on-conflict`: `overwrite` takes the
snapshot's version, `skip` keeps the target's, `rename` keeps both (the snapshot's version
goes in beside it under a new name or a new id), `fail` marks the item `conflict` and the
whole restore is refused before anything is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["overwrite", "merge", "new-target"]
OnConflict = Literal["skip", "overwrite", "rename", "fail"]
Action = Literal["create", "overwrite", "skip", "rename", "delete", "conflict"]

MODES: tuple[Mode, ...] = ("overwrite", "merge", "new-target")
ON_CONFLICT: tuple[OnConflict, ...] = ("skip", "overwrite", "rename", "fail")
ACTIONS: tuple[Action, ...] = ("create", "overwrite", "skip", "rename", "delete", "conflict")
#: actions that change or remove something already in the target
DESTRUCTIVE: frozenset[Action] = frozenset({"overwrite", "delete"})


def default_on_conflict(mode: Mode) -> OnConflict:
    return "skip" if mode == "merge" else "overwrite"


@dataclass(frozen=True)
class PlannedItem:
    """One file, row or document. `group` is where it lives (a directory, a table, a
    collection), `key` names it there (a path, a primary key, an `_id`), `reason` says
    why this action ("missing in target", "differs", "identical", "only in target")."""

    group: str
    key: str
    action: Action
    reason: str
    bytes: int = 0


@dataclass
class RestorePlan:
    mode: Mode
    on_conflict: OnConflict
    items: list[PlannedItem] = field(default_factory=list)
    #: group -> why it is replaced whole rather than item by item (`plan_whole`)
    whole: dict[str, str] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        found = Counter(item.action for item in self.items)
        return {action: found.get(action, 0) for action in ACTIONS}

    def by_group(self) -> dict[str, dict[str, int]]:
        """Counts per action per group (directory / table / collection), groups sorted."""
        groups: dict[str, Counter[str]] = {}
        for item in self.items:
            groups.setdefault(item.group, Counter())[item.action] += 1
        return {group: dict(sorted(counts.items())) for group, counts in sorted(groups.items())}

    @property
    def bytes_to_write(self) -> int:
        return sum(i.bytes for i in self.items if i.action in ("create", "overwrite", "rename"))

    @property
    def conflicts(self) -> list[PlannedItem]:
        return [item for item in self.items if item.action == "conflict"]

    @property
    def destructive(self) -> bool:
        """Whether carrying it out changes or removes anything the target holds now."""
        return any(item.action in DESTRUCTIVE for item in self.items)

    def of(self, action: Action) -> list[PlannedItem]:
        return [item for item in self.items if item.action == action]

    def to_json(self, *, items: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {"mode": self.mode, "on_conflict": self.on_conflict,
                               "totals": self.totals(), "groups": self.by_group(),
                               "bytes_to_write": self.bytes_to_write,
                               "destructive": self.destructive, "whole": dict(self.whole)}
        if items:
            doc["items"] = [{"group": i.group, "key": i.key, "action": i.action,
                             "reason": i.reason, "bytes": i.bytes} for i in self.items]
        return doc


class TargetNotEmpty(ValueError):
    """mode new-target with a target that already holds items."""


def plan_items(snapshot: Mapping[Hashable, Hashable], target: Mapping[Hashable, Hashable], *,
               mode: Mode, on_conflict: OnConflict | None = None,
               group_of: Callable[[Hashable], str] = lambda key: "",
               size_of: Callable[[Hashable], int] = lambda key: 0,
               key_text: Callable[[Hashable], str] = str) -> RestorePlan:
    """The plan for restoring `snapshot` (key -> fingerprint) over `target` (the same, for
    what the target holds now within the selection). Keys are ordered as in `snapshot`,
    then the target's extras. Raises TargetNotEmpty for mode new-target over a non-empty
    target (the caller turns it into its own clear error)."""
    policy = on_conflict or default_on_conflict(mode)
    if mode == "new-target" and target:
        raise TargetNotEmpty(f"the target already holds {len(target)} item(s)")
    plan = RestorePlan(mode, policy)
    for key, fingerprint in snapshot.items():
        group, name, size = group_of(key), key_text(key), size_of(key)
        if key not in target:
            plan.items.append(PlannedItem(group, name, "create", "missing in target", size))
        elif target[key] == fingerprint:
            plan.items.append(PlannedItem(group, name, "skip", "identical"))
        else:
            action: Action = "conflict" if policy == "fail" else policy
            reason = "differs" if policy != "skip" else "differs; the target's is kept"
            plan.items.append(PlannedItem(group, name, action, reason,
                                          0 if action == "skip" else size))
    if mode == "overwrite":
        for key in target:
            if key not in snapshot:
                plan.items.append(PlannedItem(group_of(key), key_text(key), "delete",
                                              "only in target"))
    return plan


#: the reason of a row that goes in or out because its group is replaced whole
REPLACED_WHOLE = "the table is replaced whole"


def plan_whole(group: str, snapshot: Sequence[tuple[Hashable, int]],
               target: Sequence[Hashable], *, mode: Mode) -> list[PlannedItem]:
    """The items of a group replaced whole: its items have no keys, so they are paired by
    content (`snapshot`: (fingerprint, size) per item, `target`: fingerprints), as
    multisets. A snapshot item with an equal one in the target is `skip` ("identical"),
    any other `create`; a target item left over is `delete` (in every mode: the group
    becomes the snapshot's). Items are named by position: `#1`, `#2`, ... in the
    snapshot, `target #1`, ... in the target."""
    left = Counter(target)
    items: list[PlannedItem] = []
    for number, (fingerprint, size) in enumerate(snapshot, start=1):
        if left[fingerprint] > 0:
            left[fingerprint] -= 1
            items.append(PlannedItem(group, f"#{number}", "skip", "identical"))
        else:
            reason = "missing in target" if mode == "new-target" else REPLACED_WHOLE
            items.append(PlannedItem(group, f"#{number}", "create", reason, size))
    for number, fingerprint in enumerate(target, start=1):
        if left[fingerprint] > 0:
            left[fingerprint] -= 1
            items.append(PlannedItem(group, f"target #{number}", "delete",
                                     f"only in target; {REPLACED_WHOLE}"))
    return items
