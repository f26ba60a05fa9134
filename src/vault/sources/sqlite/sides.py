"""Both sides of a row-by-row SQLite restore, read table by table (`snap` is the snapshot's
database attached to a connection whose `main` is the target).

A table whose rows can be named by its key is read as key -> fingerprint. One whose rows
cannot (NULLs in its primary key on either side, which SQLite allows in a rowid table, or
no key at all) is not refused: `TableSides.whole` says why, and its rows are read as
fingerprints in order, to be replaced whole (`sqlite_rowplan.plan_rows`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vault.sources.sqlite.db import SqliteTableMismatch, SqliteTableNotFound, quote
from vault.sources.sqlite.rowplan import TableSides
from vault.sources.sqlite.rows import (
    TableRows,
    TableShape,
    read_prints,
    read_rows,
    rowid_alias,
    table_shape,
)

__all__ = ["check_same_key", "read_sides", "selected_tables", "snapshot_sides",
           "whole_rowid"]

_NOT_ROW_TABLES = {"virtual": "a virtual table", "shadow": "a virtual table's storage",
                   "view": "a view"}


def selected_tables(conn: sqlite3.Connection, target: Path,
                    only: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The snapshot's tables to restore, in its own order, and the ones left out (why)."""
    kinds = {str(name): str(kind) for _, name, kind, *_ in conn.execute(
        "PRAGMA snap.table_list") if not str(name).startswith("sqlite_")}
    for name in only:
        if name not in kinds:
            raise SqliteTableNotFound(path=str(target), table=name,
                                      known=", ".join(sorted(kinds)) or "none")
        if kinds[name] != "table":
            raise SqliteTableMismatch(path=str(target), table=name,
                                      detail=f"it is {_NOT_ROW_TABLES[kinds[name]]}")
    names = [str(name) for (name,) in conn.execute(
        "SELECT name FROM snap.sqlite_master WHERE type = 'table' ORDER BY rowid")]
    wanted = [name for name in names if kinds.get(name) == "table"
              and (not only or name in only)]
    skipped = {name: _NOT_ROW_TABLES[kind] for name, kind in kinds.items()
               if not only and kind in ("virtual", "shadow")}
    return wanted, skipped


def snapshot_sides(conn: sqlite3.Connection, table: str) -> TableSides:
    """The snapshot's side of `table`, restored into a table the target lacks."""
    shape = table_shape(conn, "snap", table)
    snapshot = _keyed_rows(conn, "snap", shape)
    sides = TableSides(shape, snapshot, TableRows({}, {}), False, _sequence(conn, "snap", table),
                       whole=_unkeyable(shape, snapshot, "snapshot"))
    return _read_whole(conn, sides)


def read_sides(conn: sqlite3.Connection, target: Path, table: str) -> TableSides:
    """Both sides of `table`: the target's table must hold the snapshot's columns and,
    unless the table is replaced whole, name its rows by the same key."""
    sides = snapshot_sides(conn, table)
    exists = conn.execute("SELECT 1 FROM main.sqlite_master WHERE type = 'table'"
                          " AND name = ?", (table,)).fetchone() is not None
    if not exists:
        return sides
    shape, ours = sides.shape, table_shape(conn, "main", table)
    sides.target_exists = True
    sides.sequence = max(sides.sequence, _sequence(conn, "main", table))
    if sides.whole is None:
        check_same_key(ours, shape, target)
        sides.target = _keyed_rows(conn, "main", shape)
        sides.whole = _unkeyable(shape, sides.target, "target")
    else:
        _check_columns(ours, shape, target)
    return _read_whole(conn, sides)


def _keyed_rows(conn: sqlite3.Connection, schema: str, shape: TableShape) -> TableRows:
    return TableRows({}, {}) if shape.kind == "none" else read_rows(conn, schema, shape)


def _unkeyable(shape: TableShape, rows: TableRows, side: str) -> str | None:
    """Why the table's rows cannot be named by a key, or None when they can."""
    if shape.kind == "none":
        return ("it has no primary key and no rowid to name rows by (its columns take "
                "the names rowid, _rowid_ and oid)")
    if rows.duplicate_keys:
        return (f"{rows.duplicate_keys} of the {side}'s rows share a primary key "
                f"({shape.describe_key()}) with another row: NULL in a PRIMARY KEY")
    return None


def _read_whole(conn: sqlite3.Connection, sides: TableSides) -> TableSides:
    """A table replaced whole: its rows as fingerprints in order, not by key."""
    if sides.whole is None:
        return sides
    sides.snapshot, sides.target = TableRows({}, {}), TableRows({}, {})
    sides.snapshot_prints = read_prints(conn, "snap", sides.shape)
    if sides.target_exists:
        sides.target_prints = [print_ for print_, _ in read_prints(conn, "main", sides.shape)]
    return sides


def whole_rowid(conn: sqlite3.Connection, table: str) -> str | None:
    """The rowid alias both sides' `table` answer to, so a table replaced whole keeps its
    rows' rowids; None when either side has none (WITHOUT ROWID, or every alias taken)."""
    taken = {str(row[1]).lower() for schema in ("snap", "main") for row in conn.execute(
        f"PRAGMA {schema}.table_xinfo({quote(table)})")}
    ours = rowid_alias(conn, f"main.{quote(table)}", taken)
    theirs = rowid_alias(conn, f"snap.{quote(table)}", taken)
    return ours if ours is not None and ours == theirs else None


def check_same_key(ours: TableShape, theirs: TableShape, target: Path) -> None:
    """The target's table must name rows as the snapshot's does and hold its columns."""
    _check_columns(ours, theirs, target)
    if (ours.kind, ours.key) != (theirs.kind, theirs.key):
        raise SqliteTableMismatch(path=str(target), table=theirs.name, detail=(
            f"its rows are keyed by ({ours.describe_key()}) in the target but by "
            f"({theirs.describe_key()}) in the snapshot"))


def _check_columns(ours: TableShape, theirs: TableShape, target: Path) -> None:
    missing = [column for column in theirs.columns if column not in ours.columns]
    if missing:
        raise SqliteTableMismatch(path=str(target), table=theirs.name, detail=(
            "the target lacks column(s) " + ", ".join(missing)))


def _sequence(conn: sqlite3.Connection, schema: str, table: str) -> int:
    if not conn.execute(f"SELECT 1 FROM {schema}.sqlite_master"
                        " WHERE name = 'sqlite_sequence'").fetchone():
        return 0
    row = conn.execute(f"SELECT max(seq) FROM {schema}.sqlite_sequence WHERE name = ?",
                       (table,)).fetchone()
    return int(row[0]) if row and isinstance(row[0], int) else 0
