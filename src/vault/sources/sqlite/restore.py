"""Restoring a SQLite snapshot: row by row (`sqlite_merge`), the whole file, or chosen tables.

Modes overwrite and merge restore rows into an existing database (see `sqlite_merge`).
Mode new-target ("new") makes a new file; mode replace swaps whole files or tables. A
target that does not exist or is an empty (0-byte) file is new in every mode: it gets the
captured database itself, written whole, never row by row.
The whole file is written beside its target, synced, checked with `PRAGMA
integrity_check` and renamed over it, so the target is the old database or the new one,
never half of each. Chosen tables go into a new database built the same way, or, with
mode "replace" and an existing target, replace those tables (schema, rows, indexes,
triggers) inside it in one transaction that is checked before it commits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vault.errors import UsageError
from vault.sources.base import SourceRestoreRequest, SourceRestoreResult, StoredItems
from vault.sources.entities import Entity, entities_from_meta, entity_selection_of
from vault.sources.sqlite.atomic import (
    SIDE_FILES,
    checked_row_counts,
    file_beside,
    fsync_dir,
    fsync_file,
    os_detail,
)
from vault.sources.sqlite.db import (
    BusyPolicy,
    SqliteError,
    SqliteInUse,
    SqliteTargetExists,
    connect_writable,
    file_uri,
    quote,
    wal_size,
    with_busy_retry,
)
from vault.sources.sqlite.merge import plan_new_target, restore_rows, restore_rows_from
from vault.sources.sqlite.rowplan import RowPlan
from vault.sources.sqlite.stored import materialized, stored_item_path, write_item
from vault.sources.sqlite.tables import file_settings, new_database_of_tables, replace_tables


def restore_database(stored: StoredItems, request: SourceRestoreRequest, *,
                     default_target: Path, busy: BusyPolicy,
                     entities: Sequence[Entity] = ()) -> SourceRestoreResult:
    """Restore a snapshot into `request.target` (or `default_target`). A query selects an
    entity of `entities` (or of the hierarchy the snapshot's meta records) and everything
    below it; with `remap_ids` it goes in as a new copy under new keys."""
    target = Path(request.target).absolute() if request.target else default_target
    if request.query:
        entity_selection_of(request.query, "SQLite")  # a malformed query is refused before anything
        if request.only:
            raise UsageError("an entity restore takes the entity's tables; give --only "
                             "or an entity --query, not both")
        entities = tuple(entities) or entities_from_meta(stored.meta)
    elif request.remap_ids:
        raise UsageError("new ids follow an entity's references: select one with --query "
                         "'{\"entity\": NAME, \"ids\": [...]}'")
    if target.is_dir():
        raise SqliteError(path=str(target), detail="the target is a directory, not a file")
    try:
        if request.query and request.plan_mode == "new-target":
            return _entity_new_target(stored, request, target, busy, entities)
        if request.mode in ("overwrite", "merge"):
            if not request.query and _is_new(target):  # nothing there to merge with
                return _new_target(stored, request, target)
            return restore_rows(stored, request, target=target, busy=busy, entities=entities)
        if request.mode == "replace":
            if request.dry_run:
                raise UsageError("mode replace swaps whole files or tables and has no "
                                 "dry run; plan row by row with mode overwrite")
            return _replace(stored, request, target, busy)
        return _new_target(stored, request, target)
    except sqlite3.DatabaseError as error:  # what the checks did not foresee
        raise SqliteError(path=str(target), detail=str(error)) from error
    except OSError as error:  # a full disk, a read-only directory
        raise SqliteError(path=str(target), detail=os_detail(error)) from error


def _entity_new_target(stored: StoredItems, request: SourceRestoreRequest, target: Path,
                       busy: BusyPolicy, entities: Sequence[Entity]) -> SourceRestoreResult:
    """Mode new-target of an entity: a new database file holding the entity's tables with
    the selected rows. Rows go into an empty database made beside the target (a dry run:
    in scratch space) exactly as into an existing one, which is then renamed into place."""
    if target.exists() or target.is_symlink():
        raise SqliteTargetExists(path=str(target))
    item = stored_item_path(stored)
    if not request.dry_run:
        target.parent.mkdir(parents=True, exist_ok=True)
    with materialized(stored, item, request.scratch_dir) as snap:
        settings = file_settings(snap)
        place = (_file_in_scratch(request.scratch_dir) if request.dry_run
                 else file_beside(target))
        with place as empty:
            _empty_database(empty, settings)
            result = restore_rows_from(snap, request, target=empty, busy=busy,
                                       entities=entities)
            result.details["target"] = str(target)
            if request.dry_run:
                return result
            if settings["journal_mode"] == "wal":
                _set_wal(empty)
            fsync_file(empty)
            os.chmod(empty, int(stored.meta.get("file_mode", 0o600)) & 0o7777)
            os.replace(empty, target)
            fsync_dir(target.parent)
    return result


def _empty_database(path: Path, settings: dict[str, Any]) -> None:
    """A database file with no tables and the snapshot's page size, encoding and header
    fields (set before its first page is written, which fixes them)."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(file_uri(path), uri=True, isolation_level=None)
    try:
        for setting, value in settings.items():
            if setting != "journal_mode":
                conn.execute(f"PRAGMA {setting} = {quote(str(value))}")
        conn.execute("CREATE TABLE vault_empty (x)")  # writes the header now
        conn.execute("DROP TABLE vault_empty")
    finally:
        conn.close()


def _set_wal(path: Path) -> None:
    conn = sqlite3.connect(file_uri(path), uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


@contextlib.contextmanager
def _file_in_scratch(scratch_dir: str | None) -> Iterator[Path]:
    workdir = Path(tempfile.mkdtemp(prefix=".vault-sqlite-", dir=scratch_dir))
    try:
        yield workdir / "plan.db"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _new_target(stored: StoredItems, request: SourceRestoreRequest,
                target: Path) -> SourceRestoreResult:
    """Mode new-target: a new database file of the whole snapshot or the chosen tables."""
    if not _is_new(target):
        raise SqliteTargetExists(path=str(target))
    item = stored_item_path(stored)
    if request.dry_run:
        with materialized(stored, item, request.scratch_dir) as snap:
            row_plan = plan_new_target(snap, request.only, target)
        return SourceRestoreResult(details=_new_target_details(target, row_plan, None, True),
                                   plan=row_plan.plan)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not request.only:
        tables, whole_plan = _restore_whole_file(stored, item, target, None)
        assert whole_plan is not None  # a new file's rows are always planned
        row_plan = whole_plan
    else:
        scratch_dir = request.scratch_dir or str(target.parent)
        with materialized(stored, item, scratch_dir) as snap:
            row_plan = plan_new_target(snap, request.only, target)
            tables = new_database_of_tables(snap, target, request.only)
    return SourceRestoreResult(items=1, bytes=target.stat().st_size,
                               details=_new_target_details(target, row_plan, tables, False),
                               plan=row_plan.plan)


def _is_new(target: Path) -> bool:
    """Missing, or an empty file (what `touch` or an application that has not written yet
    leaves) with no journal beside it: a new target the captured file may replace."""
    if target.is_symlink() or not target.exists():
        return not target.is_symlink()
    sides = (Path(f"{target}{suffix}") for suffix in ("-wal", "-journal"))
    return (target.is_file() and target.stat().st_size == 0
            and all(not side.exists() or side.stat().st_size == 0 for side in sides))


def _new_target_details(target: Path, row_plan: RowPlan, tables: dict[str, int] | None,
                        dry_run: bool) -> dict[str, Any]:
    plan = row_plan.plan
    return {"target": str(target), "dry_run": dry_run, "plan": plan.to_json(),
            "tables": tables if tables is not None else {
                group: counts.get("create", 0) for group, counts in plan.by_group().items()},
            "id_map": {}}


def _replace(stored: StoredItems, request: SourceRestoreRequest, target: Path,
             busy: BusyPolicy) -> SourceRestoreResult:
    """Mode replace (the first restore over a database): the whole file renamed over the
    target, or the chosen tables swapped whole (schema and rows) inside it."""
    item = stored_item_path(stored)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not request.only:
        tables, _ = _restore_whole_file(stored, item, target, busy)
    else:
        with materialized(stored, item, request.scratch_dir or str(target.parent)) as snap:
            if target.exists():
                tables = replace_tables(snap, target, request.only, busy)
            else:
                tables = new_database_of_tables(snap, target, request.only)
    return SourceRestoreResult(items=1, bytes=target.stat().st_size,
                               details={"target": str(target), "tables": tables})


# --- the whole file -----------------------------------------------------------------------


def _restore_whole_file(stored: StoredItems, item: str, target: Path,
                        busy: BusyPolicy | None) -> tuple[dict[str, int], RowPlan | None]:
    """The snapshot's file renamed over `target` (busy: how to wait for an existing one),
    or as a new file, with the plan of its rows when it is new (busy None)."""
    with file_beside(target) as scratch:
        write_item(stored, item, scratch)
        counts = checked_row_counts(scratch, target)
        row_plan = plan_new_target(scratch, (), target) if busy is None else None
        _take_permissions(scratch, target, stored.meta)
        if target.exists() and busy is not None:
            _settle_existing(target, busy)
        os.replace(scratch, target)
        fsync_dir(target.parent)
        for suffix in SIDE_FILES:  # an empty WAL and its index belonged to the old file
            Path(f"{target}{suffix}").unlink(missing_ok=True)
    return counts, row_plan


def _settle_existing(target: Path, busy: BusyPolicy) -> None:
    """Before a database file is renamed over: roll back a hot journal and fold its WAL in
    (closing the last connection does both), so nothing of the old file is replayed onto
    the new one. A WAL left non-empty means another process has the database open."""
    try:
        conn = connect_writable(target, busy.attempt_timeout)
        try:
            with_busy_retry(lambda: conn.execute("SELECT count(*) FROM sqlite_master").fetchone(),
                            target, busy)
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return  # not a database (the user asked to replace it): nothing to settle
    if wal_size(target) > 0:
        raise SqliteInUse(path=str(target))


def _take_permissions(scratch: Path, target: Path, meta: dict[str, Any]) -> None:
    """The replaced file's mode and owner (the application must still open it), or for a
    new file the mode the original had."""
    if target.exists():
        stat = target.stat()
        os.chmod(scratch, stat.st_mode & 0o7777)
        with contextlib.suppress(PermissionError):
            os.chown(scratch, stat.st_uid, stat.st_gid)
    else:
        os.chmod(scratch, int(meta.get("file_mode", 0o600)) & 0o7777)
