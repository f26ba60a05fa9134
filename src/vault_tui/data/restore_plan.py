"""What the restore browser asks for, as the worker will receive it.

Pure: the operator's marks on the snapshot tree become a `Selection` (paths of a files
snapshot; tables or collections, or the records of one entity, of a database snapshot);
with the options (mode, conflict policy, target) it becomes the `RestoreArgs` that
`vault restore --queue` would queue. The preview runs that very request as a dry run, so
what the operator saw is what the worker is asked to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from vault.errors import UsageError
from vault.jobs.commands import RestoreArgs
from vault.journal import events as ev
from vault.planning.restore_plan import ACTIONS, MODES, ON_CONFLICT
from vault.planning.restore_request import check_copy_mode
from vault.restore.report import COUNTS
from vault.sources.entities import field_values
from vault.sources.registry import restores_into_path

__all__ = [
    "MODES",
    "ON_CONFLICT",
    "Mark",
    "RestoreOptions",
    "Selection",
    "SnapshotChoice",
    "confirmation_name",
    "default_options",
    "plan_rows",
    "report_rows",
    "restore_args",
]

#: the preview's columns: the plan's actions, as `vault restore --dry-run` names them
PLAN_COLUMNS = ACTIONS


@dataclass(frozen=True)
class SnapshotChoice:
    """One snapshot the browser offers (a row of the journal's snapshots projection)."""

    snapshot_id: str
    time: str  # ISO 8601, as journaled
    source_type: str  # "files", "sqlite", "postgresql", "mongodb", "settings"
    label: str | None  # the configured source's name, when it was one
    paths: tuple[str, ...]
    bytes_raw: int
    status: str

    @property
    def short_id(self) -> str:
        """The id as the tables show it (and as a restore target's default name ends)."""
        return self.snapshot_id[:8]

    @property
    def is_files(self) -> bool:
        return self.source_type == "files"

    @property
    def name(self) -> str:
        return self.label or ", ".join(self.paths) or self.source_type


@dataclass(frozen=True)
class Mark:
    """What one marked tree node selects. `path`: a file or directory of a files snapshot
    (absolute in the snapshot); `tables`: whole tables or collections (an entity with
    those below it marks all their tables); `record`: one record of entity `names[0]`."""

    kind: Literal["path", "tables", "record"]
    names: tuple[str, ...]
    record: int | str | None = None
    text: str = ""

    def describe(self) -> str:
        return self.text or ", ".join(self.names)


def _inside(path: str, ancestor: str) -> bool:
    return ancestor == "/" or path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


@dataclass(frozen=True)
class Selection:
    """The marks, as one restore can take them: paths; or tables/collections; or records
    of one entity (a restore takes `--only` or one entity `--query`, never both)."""

    marks: tuple[Mark, ...] = ()

    def toggle(self, mark: Mark) -> tuple[Selection, str | None]:
        """The selection with `mark` added, or removed when it was there; and a note when
        marks it cannot be combined with were dropped (or it was already selected)."""
        if mark in self.marks:
            return Selection(tuple(m for m in self.marks if m != mark)), None
        if mark.kind == "path":
            path = mark.names[0]
            for held in self.marks:
                if held.kind == "path" and _inside(path, held.names[0]):
                    return self, f"{path} is already selected with {held.names[0]}"
            kept = tuple(m for m in self.marks if not _inside(m.names[0], path))
            note = "marks inside it were merged into it" if len(kept) < len(self.marks) else None
            return Selection((*kept, mark)), note
        if mark.kind == "tables":
            kept = tuple(m for m in self.marks if m.kind == "tables")
            note = None if len(kept) == len(self.marks) else \
                "a restore takes whole tables or one entity's records: the records were unmarked"
            return Selection((*kept, mark)), note
        kept = tuple(m for m in self.marks if m.kind == "record" and m.names == mark.names)
        note = None if len(kept) == len(self.marks) else \
            f"a restore takes the records of one entity: only {mark.names[0]} records stay marked"
        return Selection((*kept, mark)), note

    @property
    def paths(self) -> list[str]:
        return [m.names[0] for m in self.marks if m.kind == "path"]

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(n for m in self.marks if m.kind == "tables" for n in m.names))

    @property
    def query(self) -> dict[str, Any] | None:
        records = [m for m in self.marks if m.kind == "record"]
        if not records:
            return None
        return {"entity": records[0].names[0], "ids": [m.record for m in records]}

    def describe(self) -> list[str]:
        """Lines for the selection panel (empty: the whole snapshot)."""
        query = self.query
        if query is not None:
            return [f"{query['entity']} " + ", ".join(map(str, query["ids"])),
                    "(with everything below them)"]
        return [m.describe() for m in self.marks]


@dataclass(frozen=True)
class RestoreOptions:
    mode: str  # overwrite | merge | new-target
    on_conflict: str  # skip | overwrite | rename | fail
    target: str  # a directory (files); a file, database or URL; "" = its own location
    new_ids: bool = False  # marked entity records restored as a copy with new ids
    rename: str = ""  # "FIELD=VALUE[; FIELD=VALUE]": what the copy's top records change


def default_options(choice: SnapshotChoice, cwd: str) -> RestoreOptions:
    """What the browser starts from, chosen to change nothing that exists: files go into a
    new directory beside where the TUI runs; a database merges into its own location,
    adding what is missing and keeping what differs."""
    if choice.is_files:
        return RestoreOptions("merge", "skip",
                              os.path.join(cwd, f"restore-{choice.short_id}"))
    return RestoreOptions("merge", "skip", "")


def _relative(path: str, base: str) -> str:
    return path if base == "/" else path[len(base.rstrip("/")):].lstrip("/")


def restore_args(choice: SnapshotChoice, selection: Selection, options: RestoreOptions,
                 base: str = "/") -> RestoreArgs:
    """The job `vault restore --queue` would queue for this selection and these options
    (yes=False: the caller sets it once the operator confirmed a destructive plan).

    `base` is the directory of a files snapshot that lands in the target
    (`vault restore ID:BASE -t TARGET`): the one directory a snapshot was taken of, so
    that its own path as the target puts it back in place; "/" for several paths (their
    full paths are then recreated under the target)."""
    if options.mode not in MODES:
        raise UsageError(f"unknown restore mode {options.mode!r}: choose "
                         f"{', '.join(MODES)}")
    if options.on_conflict not in ON_CONFLICT:
        raise UsageError(f"unknown conflict policy {options.on_conflict!r}: choose "
                         f"{', '.join(ON_CONFLICT)}")
    target = options.target.strip()
    on_conflict: Any = options.on_conflict
    if choice.is_files:
        if not target:
            raise UsageError("give a target directory to restore into")
        paths = [_relative(p, base) for p in selection.paths if _inside(p, base)]
        ref = choice.snapshot_id if base == "/" else f"{choice.snapshot_id}:{base}"
        return RestoreArgs(snapshot_ref=ref, target=os.path.abspath(target),
                           paths=[p for p in paths if p], mode=options.mode,
                           on_conflict=on_conflict)
    if not target and options.mode == "new-target":
        raise UsageError("give a target (a file, database or URL) for mode new-target, or "
                         "use overwrite or merge to restore into the database's own location")
    if target and restores_into_path(choice.source_type) and "://" not in target:
        target = os.path.abspath(target)  # the worker may run in another directory
    rename = field_values(p for p in options.rename.split(";") if p.strip())
    if options.new_ids or rename:
        _check_copy(selection, options)
    return RestoreArgs(snapshot_ref=choice.snapshot_id, target=target or None, database=True,
                       mode=options.mode, on_conflict=on_conflict, only=selection.tables,
                       query=selection.query, remap_ids=options.new_ids, rename=rename)


def _check_copy(selection: Selection, options: RestoreOptions) -> None:
    """A copy with new ids (`vault restore --new-ids [--rename F=V]`) adds the marked
    records of one entity beside the originals: it needs those marks, and a mode that
    adds (the CLI's rules)."""
    if not options.new_ids:
        raise UsageError("rename names a copy: tick \"copy with new ids\" (n) too")
    if selection.query is None:
        raise UsageError("a copy with new ids takes records of one entity: mark them in "
                         "the tree (space on a record)")
    check_copy_mode(options.new_ids, options.mode)


def confirmation_name(choice: SnapshotChoice, args: RestoreArgs) -> str:
    """What the operator types to go ahead with a destructive restore: the target
    directory's name, or the database target (its source's name for its own location),
    as `vault restore` asks on a terminal."""
    target = args.target or ""
    if choice.is_files:
        return os.path.basename(target.rstrip("/")) or target
    return target or choice.name


def plan_rows(plan: dict[str, Any]) -> list[list[str]]:
    """The preview: per directory / table / collection, how many items each action takes
    (columns as PLAN_COLUMNS), then the totals. A table replaced whole (its rows cannot
    be keyed: `plan["whole"]`) says so beside its name."""
    def row(name: str, counts: dict[str, int]) -> list[str]:
        return [name, *(str(counts.get(action, 0)) for action in ACTIONS)]

    whole = plan.get("whole") or {}
    rows = [row((group or "/") + (" (replaced whole)" if group in whole else ""), counts)
            for group, counts in plan.get("groups", {}).items()]
    rows.append(row("total", plan.get("totals", {})))
    return rows


def report_rows(report: ev.RestoreReported) -> list[list[str]]:
    """The restore report: per group restored/skipped/deleted/failed/conflicts, total."""
    rows = [[g.group or "/", *(str(getattr(g, name)) for name in COUNTS)]
            for g in report.groups]
    rows.append(["total", *(str(getattr(report, name)) for name in COUNTS)])
    return rows


@dataclass
class PlanSummary:
    """The figures above the preview table."""

    destructive: bool
    conflicts: int
    bytes_to_write: int
    totals: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: dict[str, Any]) -> PlanSummary:
        totals = {k: int(v) for k, v in plan.get("totals", {}).items()}
        return cls(bool(plan.get("destructive")), totals.get("conflict", 0),
                   int(plan.get("bytes_to_write") or 0), totals)
