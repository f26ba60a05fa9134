"""What a row-by-row SQLite restore will do: pure, from both sides' rows.

The plan itself comes from `vault.planning.restore_plan.plan_items` (the planner every source
shares), with a row named by (table, key); this module adds what is SQLite's own: which
new key each renamed row gets, and the refusals that must come before anything is
written (conflicts under --on-conflict fail, rename of a table whose key is not an
integer). A table whose rows cannot be named by a key (`TableSides.whole` says why) is
planned whole (`vault.planning.restore_plan.plan_whole`): replaced whole, never refused.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from vault.planning.restore_plan import Mode, OnConflict, RestorePlan, plan_items, plan_whole
from vault.sources.sqlite.rows import TableRows, TableShape, key_text

__all__ = ["MAX_ROWID", "RenameRefused", "RowPlan", "TableSides", "plan_rows"]

MAX_ROWID = 2**63 - 1


class RenameRefused(ValueError):
    """A row must be renamed but its table cannot give it a new key."""

    def __init__(self, table: str, detail: str) -> None:
        super().__init__(detail)
        self.table = table
        self.detail = detail


@dataclass
class TableSides:
    """One selected table: its shape (from the snapshot), both sides' rows, and the
    highest AUTOINCREMENT counter either side has used (0 without one)."""

    shape: TableShape
    snapshot: TableRows
    target: TableRows
    target_exists: bool = True
    sequence: int = 0
    # The highest integer key either side's whole table holds, when the rows above are a
    # selection of it (an entity restore): a new key goes above it too.
    highest_key: int = 0
    # Why the table is replaced whole (its rows cannot be keyed: NULLs in its primary
    # key, no key at all), else None; then its rows are paired by content only:
    whole: str | None = None
    snapshot_prints: list[tuple[bytes, int]] = field(default_factory=list)
    target_prints: list[bytes] = field(default_factory=list)


@dataclass
class RowPlan:
    """The shared plan, plus how to find each planned row again and renamed rows' new keys."""

    plan: RestorePlan
    keys: dict[tuple[str, str], Hashable]  # (table, key text) -> key
    new_keys: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> old -> new

    def key_of(self, table: str, text: str) -> Hashable:
        return self.keys[(table, text)]

    def id_map(self) -> dict[str, dict[str, int]]:
        return {table: dict(mapping) for table, mapping in self.new_keys.items() if mapping}


def plan_rows(tables: Sequence[TableSides], *, mode: Mode,
              on_conflict: OnConflict | None, new_ids: bool = False) -> RowPlan:
    """Plan every selected table's rows in one plan (groups are tables). Renamed rows get
    new keys, and with `new_ids` (a restore as a new copy) created rows too. Raises
    RenameRefused when a row that needs a new key lives in a table keyed by anything but
    an integer (or no integer key is left above the highest one used)."""
    snapshot: dict[Hashable, Hashable] = {}
    target: dict[Hashable, Hashable] = {}
    sizes: dict[Hashable, int] = {}
    keys: dict[tuple[str, str], Hashable] = {}
    for sides in tables:
        name = sides.shape.name
        if sides.whole is not None:
            continue
        for key, print_ in sides.snapshot.fingerprints.items():
            snapshot[(name, key)] = print_
            sizes[(name, key)] = sides.snapshot.sizes[key]
            keys[(name, key_text(key))] = key
        for key, print_ in sides.target.fingerprints.items():
            target[(name, key)] = print_
            keys[(name, key_text(key))] = key
    plan = plan_items(snapshot, target, mode=mode, on_conflict=on_conflict,
                      group_of=lambda key: str(_part(key, 0)),
                      size_of=lambda key: sizes.get(key, 0),
                      key_text=lambda key: key_text(_part(key, 1)))
    for sides in tables:
        if sides.whole is not None:
            plan.items += plan_whole(sides.shape.name, sides.snapshot_prints,
                                     sides.target_prints, mode=mode)
            plan.whole[sides.shape.name] = sides.whole
    row_plan = RowPlan(plan, keys)
    by_name = {sides.shape.name: sides for sides in tables}
    moved = [item for item in plan.items
             if item.action == "rename" or (new_ids and item.action == "create")]
    for item in moved:
        sides = by_name[item.group]
        if sides.whole is not None:
            raise RenameRefused(item.group, f"table {item.group!r} is restored whole "
                                f"({sides.whole}), so its rows cannot be given new keys")
        if not sides.shape.integer_key:
            raise RenameRefused(item.group, f"table {item.group!r} is keyed by "
                                f"({sides.shape.describe_key()}), not an integer rowid, so "
                                "its rows cannot be given new keys")
        mapping = row_plan.new_keys.setdefault(item.group, {})
        new_key = max(mapping.values()) + 1 if mapping else _first_free_key(sides)
        if new_key > MAX_ROWID:
            raise RenameRefused(item.group, f"table {item.group!r} has no free rowid "
                                f"above {new_key - 1}")
        mapping[item.key] = new_key
    return row_plan


def _part(key: Hashable, index: int) -> Hashable:
    assert isinstance(key, tuple)
    part: Hashable = key[index]
    return part


def _first_free_key(sides: TableSides) -> int:
    """Above every key either side holds and the AUTOINCREMENT counter: a renamed row
    never takes a key that a created row or the application's next insert wants."""
    return max([sides.sequence, sides.highest_key, *_int_keys(sides.snapshot),
                *_int_keys(sides.target)]) + 1


def _int_keys(rows: TableRows) -> list[int]:
    return [key for key in rows.fingerprints if isinstance(key, int)]
