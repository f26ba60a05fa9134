"""An entity hierarchy over SQLite tables (project -> session -> message by foreign-key
columns), declared like MongoDB's: `[[sources.entities]]` with `collection` naming the
table, `parent` and `key` (the column holding the parent row's primary key).

On the captured copy (never the live database): per-entity row counts and date ranges for
the snapshot's meta (so `vault ls --source` shows the tree), and, for a selective backup of
some entities, the copy is cut down to them and everything below them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from vault.sources.entities import Entity, EntitySelection, entity_closure, ordered
from vault.sources.sqlite.db import quote
from vault.sources.sqlite.rows import table_shape


def key_column(conn: sqlite3.Connection, table: str) -> str:
    """The SQL expression naming a row of `table`: its one-column primary key, or its
    rowid (the row keys the per-row restore uses, `sqlite_rows.table_shape`)."""
    shape = table_shape(conn, "main", table)
    if len(shape.key) != 1:
        raise ValueError(f"table {table!r} has a primary key of {len(shape.key)} columns; "
                         "an entity needs a one-column key")
    return shape.key[0]


def entity_meta(conn: sqlite3.Connection, entities: Sequence[Entity]) -> list[dict[str, Any]]:
    """Row counts and date ranges per entity, parents first (the shape `entity_tree` reads)."""
    records: list[dict[str, Any]] = []
    for entity in ordered(entities):
        table = quote(entity.collection)
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        record: dict[str, Any] = {"name": entity.name, "collection": entity.collection,
                                  "parent": entity.parent, "key": entity.key,
                                  "date_field": entity.date_field, "documents": int(count)}
        if entity.date_field:
            column = quote(entity.date_field)
            first, last = conn.execute(f"SELECT min({column}), max({column}) "
                                       f"FROM {table}").fetchone()
            if first is not None:
                record |= {"first": str(first), "last": str(last)}
        records.append(record)
    return records


def keep_only(conn: sqlite3.Connection, entities: Sequence[Entity],
              selection: EntitySelection) -> dict[str, int]:
    """Cut the copy down to the selected entities and everything below them: their rows
    stay, every other row of every table goes (then VACUUM, so no deleted row lingers in
    free pages). Returns the rows kept per entity."""

    def find_ids(entity: Entity, field: str, values: list[Any]) -> list[Any]:
        if not values:
            return []
        column = key_column(conn, entity.collection) if field == "_id" else quote(field)
        key = key_column(conn, entity.collection)
        marks = ",".join("?" * len(values))
        rows = conn.execute(f"SELECT {key} FROM {quote(entity.collection)} "
                            f"WHERE {column} IN ({marks})", values)
        return [row[0] for row in rows]

    chosen = entity_closure(entities, selection, find_ids)
    by_table = {e.collection: e for e in entities if e.name in chosen}
    conn.execute("BEGIN")
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for table in tables:
        entity = by_table.get(table)
        if entity is None:
            conn.execute(f"DELETE FROM {quote(table)}")
            continue
        keep = chosen[entity.name]
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS vault_keep (k)")
        conn.execute("DELETE FROM vault_keep")
        conn.executemany("INSERT INTO vault_keep VALUES (?)", [(k,) for k in keep])
        conn.execute(f"DELETE FROM {quote(table)} WHERE {key_column(conn, table)} "
                     "NOT IN (SELECT k FROM vault_keep)")
    conn.execute("COMMIT")
    conn.execute("VACUUM")
    return {name: len(ids) for name, ids in chosen.items()}
