"""Shared plumbing for projections that are a set of plain tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, ClassVar

from vault.journal.events import Event, RecordedEvent

Handler = Callable[[sqlite3.Connection, RecordedEvent], None]


class TableProjection:
    """A projection defined by its DDL and one handler per event type it folds in.

    `ddl` must match the migration that first created the tables character for character
    (bar whitespace): a rebuild recreates them from `ddl`, and a test compares the schemas.
    """

    name: str = ""
    tables: ClassVar[tuple[str, ...]] = ()
    ddl: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._handlers = self.handlers()

    def handlers(self) -> dict[type[Event], Handler]:
        """Which function folds in each event type; types not listed are ignored."""
        raise NotImplementedError

    def create(self, conn: sqlite3.Connection) -> None:
        for statement in self.ddl:
            conn.execute(statement)

    def drop(self, conn: sqlite3.Connection) -> None:
        for table in self.tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")

    def apply(self, conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
        handler = self._handlers.get(type(recorded.event))
        if handler is not None:
            handler(conn, recorded)


def upsert(
    conn: sqlite3.Connection,
    table: str,
    key: str,
    values: dict[str, Any],
    update_rules: dict[str, str] | None = None,
) -> None:
    """INSERT `values`, or on a `key` conflict overwrite them.

    `update_rules` replaces the default `col = excluded.col` for some columns, e.g. to keep
    a value that is already set. Column names come from code, never from event data.
    """
    rules = update_rules or {}
    columns = list(values)
    sets = [f"{col} = {rules.get(col, f'excluded.{col}')}" for col in columns if col != key]
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)}"
    )
    conn.execute(sql, list(values.values()))
