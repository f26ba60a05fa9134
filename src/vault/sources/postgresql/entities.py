"""Which rows an entity restore of a PostgreSQL snapshot takes. Pure: reading the stored
items is passed in.

A request `query = {"entity": "project", "ids": [2]}` restores those rows of the entity's
table and every row below them in the declared hierarchy (`[[sources.entities]]`): the
sessions whose `project_id` holds a selected project's key, the messages whose
`session_id` holds a selected session's, and so on. The closure runs over the snapshot's
stored COPY blocks (never the live target) with `entities.entity_closure`, one pass over
each entity table, parents first, keeping only the selected rows' data lines: those are
what the restore loads, so no table is read twice.

A row is named by its primary key's text form as COPY writes it, which is the server's
own `key::text` (what `pg_rows` names rows by); a child is within the selection when its
reference column's text equals a selected parent's key text. An id given as a number or
as text (`2`, `"2"`) is compared by that text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vault.errors import UsageError
from vault.sources.entities import Entity, EntitySelection, entity_closure, subtree
from vault.sources.postgresql.rows_plan import unescape_copy_field
from vault.sources.postgresql.tools import PgUnknownTable, TableRef, select_tables

__all__ = [
    "EntityScope",
    "EntityTable",
    "PgEntityInTarget",
    "PgEntityNotFound",
    "PgEntityTableUnfit",
    "PgNewIdsRefused",
    "entity_scope",
    "entity_tables",
]

_SHOWN_IDS = 10  # ids an error lists of what the snapshot holds


class PgEntityNotFound(UsageError):
    """the snapshot holds no {entity} row with id {ids} (table {table} has {count} row(s): {known}); nothing was restored"""  # noqa: E501


class PgEntityTableUnfit(UsageError):
    """entity {entity!r} (table {table}) cannot be restored row by row: {detail}; nothing was restored"""  # noqa: E501


class PgNewIdsRefused(UsageError):
    """cannot restore table {table} as a new copy with new ids: its primary key ({key}) is not one serial or identity column; nothing was restored"""  # noqa: E501


class PgEntityInTarget(UsageError):
    """database {database!r} already holds {count} row(s) of the selection ({where}), so it is not a new target: restore with --mode merge or overwrite, or as a new copy with --new-ids; nothing was restored"""  # noqa: E501


@dataclass(frozen=True)
class EntityTable:
    """One entity of the selection and the snapshot table holding it."""

    entity: Entity
    table: TableRef
    key: str  # the table's one-column primary key, as the capture recorded it
    parent: TableRef | None = None
    reference: str | None = None  # the column holding the parent row's key


def entity_tables(entities: Sequence[Entity], name: str, tables: list[TableRef],
                  recorded_keys: Mapping[TableRef, Sequence[str]]) -> list[EntityTable]:
    """Entity `name` and every entity below it, parents first, each with its table among
    the snapshot's `tables` (`collection` = "table" or "schema.table") and that table's
    primary key as the capture recorded it (`recorded_keys`)."""
    if not entities:
        raise UsageError("this PostgreSQL source declares no entities ([[sources.entities]])"
                         " and the snapshot records none, so there is no entity to restore")
    try:
        chosen = subtree(entities, name)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    found: dict[str, EntityTable] = {}
    for entity in chosen:
        try:
            [table] = select_tables(tables, [entity.collection])
        except PgUnknownTable as exc:
            raise PgEntityTableUnfit(entity=entity.name, table=entity.collection,
                                     detail=str(exc)) from None
        key = list(recorded_keys.get(table, ()))
        if len(key) != 1:
            detail = (f"its primary key is ({', '.join(key)}), not one column" if key else
                      "the snapshot records no primary key for it")
            raise PgEntityTableUnfit(entity=entity.name, table=table.qualified, detail=detail)
        sharing = [e.entity.name for e in found.values() if e.table == table]
        if sharing:
            raise PgEntityTableUnfit(entity=entity.name, table=table.qualified, detail=(
                f"entity {sharing[0]!r} is stored in the same table"))
        parent = found.get(entity.parent or "")
        found[entity.name] = EntityTable(entity, table, key[0],
                                         parent.table if parent else None,
                                         entity.key if parent else None)
    return list(found.values())


@dataclass
class EntityRows:
    """The selected rows of one entity table: their keys and COPY data lines (without
    their newline), in the snapshot's order, and the block's column names."""

    columns: list[str]
    keys: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)

    def copy_data(self) -> Iterator[bytes]:
        """The rows as the data of a `COPY ... FROM stdin`, its end line included."""
        batch: list[bytes] = []
        for line in self.lines:
            batch.append(line + b"\n")
            if len(batch) >= 10_000:
                yield b"".join(batch)
                batch = []
        batch.append(b"\\.\n")
        yield b"".join(batch)


@dataclass
class EntityScope:
    """What an entity restore takes from the snapshot: its tables, parents first, and the
    selected rows of each (by qualified table name)."""

    tables: list[EntityTable]
    rows: dict[str, EntityRows]

    def references(self) -> dict[str, dict[str, str]]:
        """Child table -> {its reference column -> the parent's table}: the columns a new
        copy rewrites to its parents' new keys."""
        return {t.table.qualified: {t.reference: t.parent.qualified}
                for t in self.tables if t.parent is not None and t.reference is not None}


# (columns, data lines without newline) of a table's stored COPY block
ReadBlock = Callable[[TableRef], tuple[list[str], Iterable[bytes]]]


def entity_scope(entities: Sequence[Entity], selection: EntitySelection,
                 tables: list[TableRef], recorded_keys: Mapping[TableRef, Sequence[str]],
                 read_block: ReadBlock, codec: str) -> EntityScope:
    """The selection's rows in the snapshot: `read_block(table)` gives a stored table's
    columns and data lines (`codec` decodes them). Every id asked for must be there."""
    chosen = entity_tables(entities, selection.entity, tables, recorded_keys)
    by_name = {t.entity.name: t for t in chosen}
    rows: dict[str, EntityRows] = {}
    root = chosen[0]
    held = _Held()  # the root table's keys, for an error naming what exists

    def find_ids(entity: Entity, column: str, values: list[Any]) -> list[str]:
        where = by_name[entity.name]
        columns, lines = read_block(where.table)
        match = where.key if column == "_id" else column
        for name in (where.key, match):
            if name not in columns:
                raise PgEntityTableUnfit(entity=entity.name, table=where.table.qualified,
                                         detail=f"the snapshot's rows have no column {name!r}")
        key_at, match_at = columns.index(where.key), columns.index(match)
        wanted = {text for text in map(_key_text, values) if text is not None}
        found = rows[where.table.qualified] = EntityRows(columns)
        for line in lines:
            fields = line.split(b"\t")
            key = unescape_copy_field(fields[key_at].decode(codec, "replace"))
            if where is root and key is not None:
                held.add(key)
            value = unescape_copy_field(fields[match_at].decode(codec, "replace"))
            if value in wanted and key is not None:
                found.keys.append(key)
                found.lines.append(line)
        return list(found.keys)

    selected = entity_closure(entities, selection, find_ids)
    missing = [text for text in dict.fromkeys(map(_key_text, selection.ids))
               if text is not None and text not in selected[root.entity.name]]
    if missing:
        raise PgEntityNotFound(entity=root.entity.name, ids=", ".join(missing),
                               table=root.table.qualified, count=held.count,
                               known=held.shown())
    return EntityScope(chosen, rows)


class _Held:
    """How many keys a table holds and the first few of them."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[str] = []

    def add(self, key: str) -> None:
        self.count += 1
        if len(self.first) < _SHOWN_IDS:
            self.first.append(key)

    def shown(self) -> str:
        more = ", ..." if self.count > len(self.first) else ""
        return ", ".join(self.first) + more if self.first else "none"


def _key_text(value: Any) -> str | None:
    """A key as rows are named: its text form (`2` and `"2"` alike); None for a value no
    PostgreSQL key is spelled by (the ObjectId `id_candidates` adds for a hex string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, str)):
        return str(value)
    return None
