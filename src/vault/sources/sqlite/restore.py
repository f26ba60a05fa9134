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
from vault.sources.sqlite.db import (
    BusyPolicy,
    SqliteError,
    SqliteInUse,
    SqliteRestoreFailed,
    SqliteTableNotFound,
    SqliteTargetExists,
    connect_writable,
    file_uri,
    integrity_problems,
    pragma,
    quote,
    table_row_counts,
    translate_open_error,
    wal_size,
    with_busy_retry,
)
from vault.sources.sqlite.merge import plan_new_target, restore_rows, restore_rows_from
from vault.sources.sqlite.rowplan import RowPlan
from vault.sources.sqlite.rows import rowid_alias
from vault.sources.sqlite.stored import materialized, stored_item_path, write_item

_SIDE_FILES = ("-wal", "-shm")


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
        raise SqliteError(path=str(target), detail=_os_detail(error)) from error


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
        settings = _file_settings(snap)
        place = (_file_in_scratch(request.scratch_dir) if request.dry_run
                 else _file_beside(target))
        with place as empty:
            _empty_database(empty, settings)
            result = restore_rows_from(snap, request, target=empty, busy=busy,
                                       entities=entities)
            result.details["target"] = str(target)
            if request.dry_run:
                return result
            if settings["journal_mode"] == "wal":
                _set_wal(empty)
            _fsync_file(empty)
            os.chmod(empty, int(stored.meta.get("file_mode", 0o600)) & 0o7777)
            os.replace(empty, target)
            _fsync_dir(target.parent)
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
            tables = _new_database_of_tables(snap, target, request.only)
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
                tables = _replace_tables(snap, target, request.only, busy)
            else:
                tables = _new_database_of_tables(snap, target, request.only)
    return SourceRestoreResult(items=1, bytes=target.stat().st_size,
                               details={"target": str(target), "tables": tables})


# --- the whole file -----------------------------------------------------------------------


def _restore_whole_file(stored: StoredItems, item: str, target: Path,
                        busy: BusyPolicy | None) -> tuple[dict[str, int], RowPlan | None]:
    """The snapshot's file renamed over `target` (busy: how to wait for an existing one),
    or as a new file, with the plan of its rows when it is new (busy None)."""
    with _file_beside(target) as scratch:
        write_item(stored, item, scratch)
        counts = _checked_row_counts(scratch, target)
        row_plan = plan_new_target(scratch, (), target) if busy is None else None
        _take_permissions(scratch, target, stored.meta)
        if target.exists() and busy is not None:
            _settle_existing(target, busy)
        os.replace(scratch, target)
        _fsync_dir(target.parent)
        for suffix in _SIDE_FILES:  # an empty WAL and its index belonged to the old file
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


# --- chosen tables ------------------------------------------------------------------------


def _new_database_of_tables(snap: Path, target: Path, only: tuple[str, ...]) -> dict[str, int]:
    settings = _file_settings(snap)
    with _file_beside(target) as scratch:
        scratch.unlink()  # SQLite sets page size and encoding only on an empty database
        conn = sqlite3.connect(file_uri(scratch), uri=True, isolation_level=None)
        try:
            for setting, value in settings.items():  # before ATTACH fixes the encoding
                conn.execute(f"PRAGMA {setting} = {quote(str(value))}")
            _attach(conn, snap)
            counts = _copy_tables_in_transaction(conn, target, only)
            conn.execute("DETACH snap")
            if settings["journal_mode"] == "wal":
                conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        _fsync_file(scratch)
        os.chmod(scratch, 0o600)
        os.replace(scratch, target)
        _fsync_dir(target.parent)
    return counts


def _file_settings(snap: Path) -> dict[str, Any]:
    """The snapshot's page size, encoding and header fields, for a new file like it."""
    conn = sqlite3.connect(file_uri(snap, mode="ro"), uri=True, isolation_level=None)
    try:
        return {name: pragma(conn, name) for name in (
            "page_size", "encoding", "auto_vacuum", "user_version", "application_id",
            "journal_mode")}
    finally:
        conn.close()


def _replace_tables(snap: Path, target: Path, only: tuple[str, ...],
                    busy: BusyPolicy) -> dict[str, int]:
    conn = connect_writable(target, busy.attempt_timeout)
    try:
        with_busy_retry(lambda: conn.execute("SELECT count(*) FROM sqlite_master").fetchone(),
                        target, busy)
    except sqlite3.DatabaseError as error:
        conn.close()
        raise translate_open_error(error, target) from error
    try:
        _attach(conn, snap)
        with_busy_retry(lambda: conn.execute("BEGIN IMMEDIATE"), target, busy)
        return _copy_tables_in_transaction(conn, target, only, begun=True, busy=busy)
    finally:
        conn.close()


def _copy_tables_in_transaction(conn: sqlite3.Connection, where: Path, only: tuple[str, ...],
                                begun: bool = False,
                                busy: BusyPolicy | None = None) -> dict[str, int]:
    """Copy the chosen tables and views from `snap` into `main`, check the result and
    commit; any failure rolls everything back."""
    plan = _schema_plan(conn, where, only)
    if not begun:
        conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in plan:
            conn.execute(statement)
        _copy_sequences(conn, only)
        problems = integrity_problems(conn, "main")
        if problems:
            raise SqliteRestoreFailed(path=str(where), detail="; ".join(problems[:3]))
        counts = {table: count for table, count in table_row_counts(conn, "main").items()
                  if table in only}
        if busy is None:
            conn.execute("COMMIT")
        else:  # a rollback-journal commit waits for readers to let go
            with_busy_retry(lambda: conn.execute("COMMIT"), where, busy)
        return counts
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _schema_plan(conn: sqlite3.Connection, where: Path, only: tuple[str, ...]) -> list[str]:
    """The statements that make `main`'s chosen tables and views what they are in `snap`:
    drop, create, fill (rowids kept), then indexes and triggers."""
    objects = conn.execute("SELECT type, name, tbl_name, sql FROM snap.sqlite_master"
                           " WHERE sql IS NOT NULL ORDER BY rowid").fetchall()
    kinds = {name: kind for kind, name, _, _ in objects
             if kind in ("table", "view") and not name.startswith("sqlite_")}
    for name in only:
        if name not in kinds:
            known = ", ".join(sorted(kinds))
            raise SqliteTableNotFound(path=str(where), table=name, known=known or "none")
    plan: list[str] = []
    for kind, name, _, sql in objects:
        if name in only and kind == "table":
            if str(sql).upper().startswith("CREATE VIRTUAL TABLE"):
                raise SqliteError(path=str(where), detail=f"table {name!r} is a virtual "
                                  "table; restore the whole database instead")
            plan += [f"DROP TABLE IF EXISTS main.{quote(name)}", str(sql),
                     _fill_statement(conn, name)]
    for kind, _, table, sql in objects:
        if kind in ("index", "trigger") and table in only and kinds.get(table) == "table":
            plan.append(str(sql))
    for kind, name, _, sql in objects:
        if name in only and kind == "view":
            plan += [f"DROP VIEW IF EXISTS main.{quote(name)}", str(sql)]
    return plan


def _fill_statement(conn: sqlite3.Connection, table: str) -> str:
    """INSERT ... SELECT of a table's stored columns (generated ones are computed again),
    with the rowid of a rowid table, so rows keep their ids even without INTEGER PRIMARY KEY."""
    columns = [str(row[1]) for row in conn.execute(
        f"PRAGMA snap.table_xinfo({quote(table)})") if row[6] == 0]
    rowid = rowid_alias(conn, f"snap.{quote(table)}", {c.lower() for c in columns})
    names = ([rowid] if rowid else []) + [quote(column) for column in columns]
    listed = ", ".join(names)
    return (f"INSERT INTO main.{quote(table)} ({listed}) "
            f"SELECT {listed} FROM snap.{quote(table)}")


def _copy_sequences(conn: sqlite3.Connection, only: tuple[str, ...]) -> None:
    """AUTOINCREMENT counters of the chosen tables, so a new row never reuses an old id."""
    has = "SELECT 1 FROM {}.sqlite_master WHERE name = 'sqlite_sequence'"
    if not (conn.execute(has.format("snap")).fetchone()
            and conn.execute(has.format("main")).fetchone()):
        return
    marks = ", ".join("?" for _ in only)
    conn.execute(f"DELETE FROM main.sqlite_sequence WHERE name IN ({marks})", only)
    conn.execute("INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq"
                 f" FROM snap.sqlite_sequence WHERE name IN ({marks})", only)


def _attach(conn: sqlite3.Connection, snap: Path) -> None:
    conn.execute("ATTACH ? AS snap", (file_uri(snap, mode="ro"),))


# --- files --------------------------------------------------------------------------------


@contextlib.contextmanager
def _file_beside(target: Path) -> Iterator[Path]:
    """A new private file in the target's directory (so a rename onto the target is
    atomic); removed with SQLite's side files unless it was renamed into place."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".vault-restore",
                                dir=target.parent)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        for leftover in (path, *(Path(f"{path}{s}") for s in (*_SIDE_FILES, "-journal"))):
            leftover.unlink(missing_ok=True)


def _checked_row_counts(path: Path, reported_as: Path) -> dict[str, int]:
    """Rows per table of a restored file that passes `PRAGMA integrity_check`. Opened
    read-write so that closing it removes the -wal and -shm files it makes."""
    try:
        conn = sqlite3.connect(file_uri(path), uri=True, isolation_level=None)
        try:
            problems = integrity_problems(conn)
            counts = {} if problems else table_row_counts(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        problems = [str(error)]
    if problems:
        raise SqliteRestoreFailed(path=str(reported_as), detail="; ".join(problems[:3]))
    return counts


def _os_detail(error: OSError) -> str:
    return f"{error.strerror or error}: {error.filename}" if error.filename else str(error)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync_file(path)
