"""Restoring chosen tables of a SQLite snapshot: into a new database made like the
snapshot's, or (mode replace) over those tables of an existing one, in one transaction
checked before it commits (schema, rows with their rowids, indexes, triggers, views,
AUTOINCREMENT counters)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from vault.sources.sqlite.atomic import file_beside, fsync_dir, fsync_file
from vault.sources.sqlite.db import (
    BusyPolicy,
    SqliteError,
    SqliteRestoreFailed,
    SqliteTableNotFound,
    connect_writable,
    file_uri,
    integrity_problems,
    pragma,
    quote,
    table_row_counts,
    translate_open_error,
    with_busy_retry,
)
from vault.sources.sqlite.rows import rowid_alias


def new_database_of_tables(snap: Path, target: Path, only: tuple[str, ...]) -> dict[str, int]:
    settings = file_settings(snap)
    with file_beside(target) as scratch:
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
        fsync_file(scratch)
        os.chmod(scratch, 0o600)
        os.replace(scratch, target)
        fsync_dir(target.parent)
    return counts


def file_settings(snap: Path) -> dict[str, Any]:
    """The snapshot's page size, encoding and header fields, for a new file like it."""
    conn = sqlite3.connect(file_uri(snap, mode="ro"), uri=True, isolation_level=None)
    try:
        return {name: pragma(conn, name) for name in (
            "page_size", "encoding", "auto_vacuum", "user_version", "application_id",
            "journal_mode")}
    finally:
        conn.close()


def replace_tables(snap: Path, target: Path, only: tuple[str, ...],
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
