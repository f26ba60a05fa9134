"""Which rows an entity restore of a SQLite snapshot takes, on both sides.

A request `query = {"entity": "project", "ids": [2]}` restores those rows of the entity's
table and everything below them: the sessions whose `project_id` holds a selected
project's key, the messages whose `session_id` holds a selected session's, and so on down
the declared hierarchy (`[[sources.entities]]`). The closure is computed on the stored
snapshot's copy; on the target it is the same selection as it stands now -- the selected
ids, then the rows whose key holds a parent selected on either side -- so a session the
project gained since the snapshot is within it too (mode overwrite deletes it), exactly
as MongoDB's entity restore does. With new ids (`remap_ids`) nothing in the target is
within the selection: every row goes in as a new copy, and `references` says which
columns must follow their parents' new keys.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.errors import UsageError
from vault.sources.entities import Entity, EntitySelection, entity_closure, subtree
from vault.sources.sqlite.db import SqliteError, SqliteTableMismatch, quote
from vault.sources.sqlite.rowplan import TableSides
from vault.sources.sqlite.rows import TableRows, TableShape, table_shape

__all__ = ["EntityScope", "entity_scope"]

_BATCH = 500  # values per IN (...) list: well below SQLite's limit on parameters
_SQL_VALUES = (int, float, str, bytes)


class SqliteEntityNotFound(SqliteError):
    """the snapshot holds no {entity} row with id {ids} (table {table!r} of {path}); nothing was restored"""  # noqa: E501


@dataclass(frozen=True)
class EntityScope:
    """The rows of each entity table within the selection, by key, on both sides."""

    entities: tuple[Entity, ...]  # the selected entity and those below it, parents first
    snapshot_keys: dict[str, set[Hashable]]  # table -> keys
    target_keys: dict[str, set[Hashable]]
    remap: bool

    @property
    def tables(self) -> list[str]:
        return [entity.collection for entity in self.entities]

    def references(self) -> dict[str, dict[str, str]]:
        """Child table -> {its key column -> the parent's table}, within the selection."""
        by_name = {entity.name: entity for entity in self.entities}
        out: dict[str, dict[str, str]] = {}
        for entity in self.entities:
            parent = by_name.get(entity.parent or "")
            if parent is not None and entity.key:
                out.setdefault(entity.collection, {})[entity.key] = parent.collection
        return out

    def narrow(self, sides: TableSides) -> TableSides:
        """One table's rows cut down to the selection; a new copy has nothing in the target
        within it. The highest key of the whole table is kept: new keys go above it."""
        name = sides.shape.name
        target = (TableRows({}, {}) if self.remap
                  else _only(sides.target, self.target_keys.get(name, set())))
        highest = max([sides.highest_key, *_ints(sides.snapshot), *_ints(sides.target)])
        return TableSides(sides.shape, _only(sides.snapshot, self.snapshot_keys[name]),
                          target, sides.target_exists, sides.sequence, highest)


def entity_scope(conn: sqlite3.Connection, entities: Sequence[Entity],
                 selection: EntitySelection, *, remap: bool, target: Path) -> EntityScope:
    """The selection's rows in `snap` (the snapshot) and `main` (the target) of `conn`."""
    if not entities:
        raise UsageError("this SQLite source declares no entities ([[sources.entities]]), "
                         "so there is no entity to restore")
    try:
        chosen = tuple(subtree(entities, selection.entity))
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    shapes = {e.collection: _entity_shape(conn, "snap", e.collection, target) for e in chosen}
    stored = entity_closure(entities, selection, _finder(conn, "snap", shapes, target))
    root = chosen[0]
    if not stored[root.name]:
        raise SqliteEntityNotFound(entity=root.name, table=root.collection, path=str(target),
                                   ids=", ".join(str(i) for i in selection.ids))
    found: dict[str, list[Any]] = {}
    if not remap:
        found = _target_closure(conn, chosen, selection, stored, target)
    return EntityScope(
        chosen,
        {e.collection: _as_keys(shapes[e.collection], stored[e.name]) for e in chosen},
        {e.collection: _as_keys(shapes[e.collection], found.get(e.name, [])) for e in chosen},
        remap)


def _target_closure(conn: sqlite3.Connection, chosen: Sequence[Entity],
                    selection: EntitySelection, stored: Mapping[str, list[Any]],
                    target: Path) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for entity in chosen:
        if not _has_table(conn, "main", entity.collection):
            found[entity.name] = []
            continue
        shape = _entity_shape(conn, "main", entity.collection, target)
        find = _finder(conn, "main", {entity.collection: shape}, target)
        if entity is chosen[0]:
            found[entity.name] = find(entity, "_id", list(selection.ids))
        else:
            assert entity.parent is not None and entity.key is not None
            parents = [*stored.get(entity.parent, []), *found.get(entity.parent, [])]
            found[entity.name] = find(entity, entity.key, parents)
    return found


def _finder(conn: sqlite3.Connection, schema: str, shapes: Mapping[str, TableShape],
            target: Path) -> Any:
    """`find_ids(entity, field, values)` over `schema`: the keys of the entity's rows whose
    key (field "_id") or reference column holds one of `values`."""
    def find_ids(entity: Entity, field: str, values: list[Any]) -> list[Any]:
        shape = shapes[entity.collection]
        key = shape.key[0]
        if field == "_id":
            column = key
        else:
            if field not in shape.columns:
                raise SqliteTableMismatch(path=str(target), table=entity.collection, detail=(
                    f"entity {entity.name!r} names the column {field!r}, which it lacks"))
            column = quote(field)
        wanted = _sql_values(values)
        keys: list[Any] = []
        table = f"{schema}.{quote(entity.collection)}"
        for start in range(0, len(wanted), _BATCH):
            batch = wanted[start:start + _BATCH]
            marks = ", ".join("?" for _ in batch)
            keys += [row[0] for row in conn.execute(
                f"SELECT {key} FROM {table} WHERE {column} IN ({marks})", batch)]
        return list(dict.fromkeys(keys))  # a row found by two spellings counts once

    return find_ids


def _entity_shape(conn: sqlite3.Connection, schema: str, table: str,
                  target: Path) -> TableShape:
    if not _has_table(conn, schema, table):
        side = "snapshot" if schema == "snap" else "target"
        raise SqliteTableMismatch(path=str(target), table=table,
                                  detail=f"an entity's table, and the {side} has no such table")
    shape = table_shape(conn, schema, table)
    if len(shape.key) != 1:
        raise SqliteTableMismatch(path=str(target), table=table, detail=(
            f"an entity's rows need a one-column key, and it is keyed by "
            f"({shape.describe_key()})"))
    return shape


def _has_table(conn: sqlite3.Connection, schema: str, table: str) -> bool:
    return conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table'"
                        " AND name = ?", (table,)).fetchone() is not None


def _sql_values(values: Iterable[Any]) -> list[Any]:
    """The values SQLite can compare, each once; a key given as text that spells an
    integer ("2", from a command line) is looked up as the integer too."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, _SQL_VALUES):
            continue
        out.append(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            out.append(int(value))
    return list(dict.fromkeys(out))


def _as_keys(shape: TableShape, values: Iterable[Any]) -> set[Hashable]:
    """Closure values as `read_rows` names rows: a primary key's are 1-tuples."""
    return {(value,) if shape.kind == "pk" else value for value in values}


def _only(rows: TableRows, keys: set[Hashable]) -> TableRows:
    return TableRows({k: v for k, v in rows.fingerprints.items() if k in keys},
                     {k: v for k, v in rows.sizes.items() if k in keys})


def _ints(rows: TableRows) -> list[int]:
    return [key for key in rows.fingerprints if isinstance(key, int)]
