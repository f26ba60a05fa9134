"""Restoring a SQLite snapshot row by row into an existing database (modes overwrite, merge).

The snapshot's database is attached to a connection on the target, and everything happens
in one transaction: both sides' rows are read, planned with the shared planner
(`sqlite_rowplan`), refused if the plan says so, carried out exactly, checked with
`PRAGMA integrity_check` and committed -- or rolled back, leaving the target as it was.
The write lock is taken before the target is read (BEGIN IMMEDIATE), so the plan is made
from the very rows it changes. A dry run reads in a plain read transaction and writes
nothing.

While rows go in, the target's triggers on the restored tables are set aside (dropped and
created again inside the transaction, so no other connection ever sees them missing):
they ran when the rows were first written, and firing them again would write rows no plan
foresaw. Foreign keys are not enforced on this connection (SQLite's default), so rows can
go in in any order.

A table whose rows cannot be keyed (`sqlite_sides`: NULLs in its primary key, no key at
all) is replaced whole in the same transaction, in both modes: its rows are deleted and
the snapshot's inserted, and the plan says so (`RestorePlan.whole`).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vault.planning.restore_plan import PlannedItem
from vault.sources.base import SourceRestoreRequest, SourceRestoreResult, StoredItems
from vault.sources.entities import (
    Entity,
    EntitySelection,
    check_renamed_columns,
    entity_selection_of,
    renamed_fields,
)
from vault.sources.sqlite.db import (
    BusyPolicy,
    SqliteConflicts,
    SqliteConstraint,
    SqliteError,
    SqliteNewIdsRefused,
    SqliteNoTarget,
    SqliteRenameRefused,
    SqliteRestoreFailed,
    SqliteTableMismatch,
    connect_readonly,
    connect_writable,
    file_uri,
    integrity_problems,
    quote,
    translate_open_error,
    with_busy_retry,
)
from vault.sources.sqlite.entity_scope import entity_scope
from vault.sources.sqlite.rowplan import RenameRefused, RowPlan, TableSides, plan_rows
from vault.sources.sqlite.rows import (
    TableShape,
    decode_text,
    key_params,
    sql_literal,
    table_shape,
)
from vault.sources.sqlite.sides import read_sides, selected_tables, snapshot_sides, whole_rowid
from vault.sources.sqlite.stored import materialized, stored_item_path

__all__ = ["plan_new_target", "restore_rows", "restore_rows_from"]

def restore_rows(stored: StoredItems, request: SourceRestoreRequest, *, target: Path,
                 busy: BusyPolicy, entities: Sequence[Entity] = ()) -> SourceRestoreResult:
    """Restore the snapshot's rows of the selected tables (or of the entity the request's
    query selects, declared in `entities`) into the database `target`."""
    item = stored_item_path(stored)
    with materialized(stored, item, request.scratch_dir) as snap:
        return restore_rows_from(snap, request, target=target, busy=busy, entities=entities)


def restore_rows_from(snap: Path, request: SourceRestoreRequest, *, target: Path,
                      busy: BusyPolicy, entities: Sequence[Entity] = ()) -> SourceRestoreResult:
    """`restore_rows` from the snapshot's database already made a file (`snap`)."""
    if not target.exists():
        raise SqliteNoTarget(path=str(target), mode=request.plan_mode)
    selection = entity_selection_of(request.query, "SQLite") if request.query else None
    connect = connect_readonly if request.dry_run else connect_writable
    try:
        conn = connect(target, busy.attempt_timeout)
    except sqlite3.DatabaseError as error:
        raise translate_open_error(error, target) from error
    try:
        conn.text_factory = decode_text
        attach = (file_uri(snap, mode="ro"),)  # ATTACH reads the target's schema: busy too
        with_busy_retry(lambda: conn.execute("ATTACH ? AS snap", attach), target, busy)
        return _in_one_transaction(conn, target, request, busy, entities, selection)
    except sqlite3.IntegrityError as error:
        raise SqliteConstraint(path=str(target), detail=str(error)) from error
    except sqlite3.DatabaseError as error:
        raise translate_open_error(error, target) from error
    finally:
        conn.close()


def plan_new_target(snap: Path, only: tuple[str, ...], target: Path) -> RowPlan:
    """The plan of restoring the snapshot file `snap` into a new database: every row of
    the selected tables is created (the whole-file restore carries it out)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.text_factory = decode_text
        conn.execute("ATTACH ? AS snap", (file_uri(snap, mode="ro"),))
        conn.execute("BEGIN")
        selected, _ = selected_tables(conn, target, only)
        sides = [snapshot_sides(conn, name) for name in selected]
        conn.execute("ROLLBACK")
        return plan_rows(sides, mode="new-target", on_conflict=None)
    finally:
        conn.close()


def _in_one_transaction(conn: sqlite3.Connection, target: Path, request: SourceRestoreRequest,
                        busy: BusyPolicy, entities: Sequence[Entity],
                        selection: EntitySelection | None) -> SourceRestoreResult:
    begin = "BEGIN" if request.dry_run else "BEGIN IMMEDIATE"
    with_busy_retry(lambda: _begin(conn, begin), target, busy)
    try:
        scope = None if selection is None else entity_scope(
            conn, entities, selection, remap=request.remap_ids, target=target)
        selected, skipped = selected_tables(conn, target, request.only)
        if scope is not None:  # the entity's tables only; every other table is left alone
            selected, skipped = [t for t in selected if t in scope.tables], {}
        sides = [read_sides(conn, target, table) for table in selected]
        if scope is not None:
            sides = [scope.narrow(_keyed(s, target)) for s in sides]
        renamed = _renamed(conn, request, selection, entities)
        row_plan = _plan(sides, request, target)
        if not request.dry_run:
            references = scope.references() if scope is not None and scope.remap else {}
            _execute(conn, sides, row_plan, target, references, renamed)
            problems = integrity_problems(conn, "main")
            if problems:
                raise SqliteRestoreFailed(path=str(target), detail="; ".join(problems[:3]))
            # a rollback-journal commit waits for the target's readers to let go
            with_busy_retry(lambda: conn.execute("COMMIT"), target, busy)
        else:
            conn.execute("ROLLBACK")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return _result(target, row_plan, sides, skipped, request.dry_run)


def _keyed(sides: TableSides, target: Path) -> TableSides:
    """An entity's rows are picked out by key: a table replaced whole has none (the one
    restore refused; a restore of the whole table or database takes it)."""
    if sides.whole is not None:
        raise SqliteTableMismatch(path=str(target), table=sides.shape.name, detail=(
            f"{sides.whole}, so an entity's rows cannot be picked out of it"))
    return sides


def _begin(conn: sqlite3.Connection, begin: str) -> None:
    """Start the transaction and take its lock now, where a busy target is retried."""
    conn.execute(begin)
    try:
        conn.execute("SELECT count(*) FROM main.sqlite_master").fetchone()
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# --- planning -----------------------------------------------------------------------------


def _plan(sides: list[TableSides], request: SourceRestoreRequest, target: Path) -> RowPlan:
    mode = request.plan_mode
    try:
        row_plan = plan_rows(sides, mode=mode, on_conflict=request.on_conflict,
                             new_ids=request.remap_ids)
    except RenameRefused as refused:
        if request.remap_ids:
            raise SqliteNewIdsRefused(path=str(target), detail=refused.detail) from refused
        raise SqliteRenameRefused(path=str(target), detail=refused.detail) from refused
    conflicts = row_plan.plan.conflicts
    if conflicts:
        per_table: dict[str, int] = defaultdict(int)
        for item in conflicts:
            per_table[item.group] += 1
        where = ", ".join(f"{table}: {count}" for table, count in sorted(per_table.items()))
        raise SqliteConflicts(path=str(target), count=len(conflicts), where=where)
    return row_plan


# --- carrying the plan out ----------------------------------------------------------------


def _renamed(conn: sqlite3.Connection, request: SourceRestoreRequest,
             selection: EntitySelection | None,
             entities: Sequence[Entity]) -> dict[str, dict[str, str]]:
    """`--rename`: table -> {column: the value the copy's rows take}; every column must
    exist in the snapshot's table."""
    found = renamed_fields(request.rename, request.remap_ids, selection, entities)
    if found is None:
        return {}
    entity, fields = found
    shape = table_shape(conn, "snap", entity.collection)
    key = [name for name in shape.columns if quote(name) in shape.key]
    check_renamed_columns(entity.collection, fields, shape.columns, key)
    return {entity.collection: fields}


def _execute(conn: sqlite3.Connection, sides: list[TableSides], row_plan: RowPlan,
             target: Path, references: Mapping[str, Mapping[str, str]],
             renamed: Mapping[str, Mapping[str, str]]) -> None:
    """Carry the plan out; `references` (table -> column -> the table it points into) are
    the columns a row given a new key rewrites to follow its parent's new key; `renamed`
    (table -> column -> value) the columns a new copy's rows take new values in."""
    by_table: dict[str, list[PlannedItem]] = defaultdict(list)
    for item in row_plan.plan.items:
        by_table[item.group].append(item)
    created = [s.shape.name for s in sides if not s.target_exists]
    _create_tables(conn, created)
    triggers = _set_triggers_aside(conn, [s.shape.name for s in sides])
    if references:
        _load_new_keys(conn, row_plan)
    for s in sides:
        if s.whole is not None:
            _replace_rows(conn, s, target)
            continue
        _apply_table(conn, s.shape, by_table.get(s.shape.name, []), row_plan, target,
                     references.get(s.shape.name, {}), renamed.get(s.shape.name, {}))
    if references:
        conn.execute("DROP TABLE temp.vault_new_keys")
    for sql in triggers + _snapshot_triggers(conn, created):
        conn.execute(sql)
    _raise_sequences(conn, sides)


def _load_new_keys(conn: sqlite3.Connection, row_plan: RowPlan) -> None:
    """Every (table, old key) -> new key, where the INSERTs of rows pointing at them look
    their parents' new keys up."""
    conn.execute("CREATE TEMP TABLE vault_new_keys (tbl TEXT, old, new,"
                 " PRIMARY KEY (tbl, old))")
    conn.executemany("INSERT INTO temp.vault_new_keys VALUES (?, ?, ?)", [
        (table, row_plan.key_of(table, old), new)
        for table, mapping in row_plan.new_keys.items() for old, new in mapping.items()])


def _create_tables(conn: sqlite3.Connection, tables: list[str]) -> None:
    """A table the target lacks is made as the snapshot has it, with its indexes."""
    for table in tables:
        for (sql,) in conn.execute(
                "SELECT sql FROM snap.sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL"
                " AND type IN ('table', 'index') ORDER BY type = 'index', rowid",
                (table,)).fetchall():
            conn.execute(str(sql))


def _set_triggers_aside(conn: sqlite3.Connection, tables: list[str]) -> list[str]:
    marks = ", ".join("?" for _ in tables)
    found = conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'trigger'"
                         f" AND tbl_name IN ({marks}) ORDER BY rowid", tables).fetchall()
    for name, _ in found:
        conn.execute(f"DROP TRIGGER main.{quote(str(name))}")
    return [str(sql) for _, sql in found]


def _snapshot_triggers(conn: sqlite3.Connection, tables: list[str]) -> list[str]:
    marks = ", ".join("?" for _ in tables)
    return [str(sql) for (sql,) in conn.execute(
        "SELECT sql FROM snap.sqlite_master WHERE type = 'trigger'"
        f" AND tbl_name IN ({marks}) ORDER BY rowid", tables)]


def _apply_table(conn: sqlite3.Connection, shape: TableShape, items: list[PlannedItem],
                 row_plan: RowPlan, target: Path, references: Mapping[str, str],
                 renamed: Mapping[str, str]) -> None:
    """Deletes first (an overwritten row is deleted and inserted again, so rows trading
    unique values cannot collide), then the snapshot's rows under their keys, then rows
    under new keys (renamed, or all of a new copy's), their `references` columns
    following the new keys of the rows they point at."""
    moved = row_plan.new_keys.get(shape.name, {})

    def keys(*actions: str) -> list[tuple[Any, ...]]:
        return [key_params(row_plan.key_of(shape.name, item.key))
                for item in items if item.action in actions and item.key not in moved]

    def run(sql: str, params: list[tuple[Any, ...]]) -> None:
        _run(conn, sql, params, target)

    table = quote(shape.name)
    run(f"DELETE FROM main.{table} WHERE {shape.where}", keys("delete", "overwrite"))
    listed = ", ".join(shape.insert_columns)
    run(f"INSERT INTO main.{table} ({listed}) SELECT {listed} FROM snap.{table}"
        f" WHERE {shape.where}", keys("create", "overwrite"))
    if moved:
        others = [quote(c) for c in shape.columns if quote(c) != shape.key[0]]
        new_values = {quote(name): value for name, value in renamed.items()}
        values = ["?" if column in new_values else _following(column, references)
                  for column in others]
        given = tuple(new_values[column] for column in others if column in new_values)
        run(f"INSERT INTO main.{table} ({', '.join([shape.key[0], *others])})"
            f" SELECT {', '.join(['?', *values])} FROM snap.{table} AS vault_row"
            f" WHERE {shape.where}",
            [(moved[item.key], *given, *key_params(row_plan.key_of(shape.name, item.key)))
             for item in items if item.key in moved])


def _replace_rows(conn: sqlite3.Connection, sides: TableSides, target: Path) -> None:
    """A table replaced whole: every row of the target's goes, every row of the
    snapshot's comes in (with its rowid where both sides have one); the target's table
    definition, indexes and other columns stay."""
    table = quote(sides.shape.name)
    conn.execute(f"DELETE FROM main.{table}")
    rowid = whole_rowid(conn, sides.shape.name)
    listed = ", ".join(([rowid] if rowid else []) + [quote(c) for c in sides.shape.columns])
    cursor = conn.execute(f"INSERT INTO main.{table} ({listed}) SELECT {listed}"
                          f" FROM snap.{table}")
    if cursor.rowcount != len(sides.snapshot_prints):
        raise SqliteError(path=str(target), detail=(
            f"INSERT of table {sides.shape.name!r} wrote {cursor.rowcount} row(s), the plan "
            f"{len(sides.snapshot_prints)}; nothing was restored"))


def _following(column: str, references: Mapping[str, str]) -> str:
    """The value a moved row takes for `column` (quoted): its own, or, for a reference
    column, the new key of the row it points at when that row was given one."""
    parents = {quote(name): parent for name, parent in references.items()}
    if column not in parents:
        return column
    own = f"vault_row.{column}"
    return (f"coalesce((SELECT new FROM temp.vault_new_keys WHERE tbl = "
            f"{sql_literal(parents[column])} AND old = {own}), {own})")


def _run(conn: sqlite3.Connection, sql: str, params: list[tuple[Any, ...]],
         target: Path) -> None:
    """Each statement touches exactly one row; anything else means the plan is not what
    is being carried out, and the transaction is abandoned."""
    if not params:
        return
    cursor = conn.executemany(sql, params)
    if cursor.rowcount != len(params):
        raise SqliteError(path=str(target), detail=(
            f"{sql.split(' ', 1)[0]} touched {cursor.rowcount} row(s), the plan "
            f"{len(params)}; nothing was restored"))


def _raise_sequences(conn: sqlite3.Connection, sides: Iterable[TableSides]) -> None:
    """AUTOINCREMENT counters are raised to the snapshot's (never lowered), so the
    application's next row does not reuse an id the snapshot's rows have used."""
    if not conn.execute("SELECT 1 FROM main.sqlite_master"
                        " WHERE name = 'sqlite_sequence'").fetchone():
        return
    for s in sides:
        if s.sequence <= 0:
            continue
        updated = conn.execute("UPDATE main.sqlite_sequence SET seq = max(seq, ?)"
                               " WHERE name = ?", (s.sequence, s.shape.name)).rowcount
        sql = conn.execute("SELECT sql FROM main.sqlite_master WHERE type = 'table'"
                           " AND name = ?", (s.shape.name,)).fetchone()
        if not updated and sql and "AUTOINCREMENT" in str(sql[0]).upper():
            conn.execute("INSERT INTO main.sqlite_sequence (name, seq) VALUES (?, ?)",
                         (s.shape.name, s.sequence))


def _result(target: Path, row_plan: RowPlan, sides: list[TableSides],
            skipped: dict[str, str], dry_run: bool) -> SourceRestoreResult:
    plan = row_plan.plan
    groups = plan.by_group()
    written = sum(1 for item in plan.items if item.action != "skip")
    details = {"target": str(target), "dry_run": dry_run, "plan": plan.to_json(),
               "tables": {s.shape.name: groups.get(s.shape.name, {}) for s in sides},
               "id_map": row_plan.id_map(),
               "tables_created": [s.shape.name for s in sides if not s.target_exists],
               "tables_skipped": skipped}
    return SourceRestoreResult(items=0 if dry_run else written,
                               bytes=0 if dry_run else plan.bytes_to_write, details=details,
                               plan=plan)
