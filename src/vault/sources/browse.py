"""Browsing a stored database snapshot: what one holds, and its records, without a server.

Every source type that stores tables, collections or entities implements `SourceBrowser`
in its own package (`sources/<type>/browse.py`) and registers it with its source type;
`vault.sources.registry.browser_for(type)` finds it. Front ends (the TUI's restore tree,
the CLI) read a snapshot through this protocol only, never through a source's private
modules. Files snapshots are not browsed here: they are a tree of the repository's own.

Reading is always from the snapshot's stored items (`StoredItems`), never from the live
database. `contents` reads only the snapshot's meta; a `RecordReader` reads items and may
need a scratch copy (SQLite), which its `close()` removes.

A record's key is what an entity restore's query names (`{"entity": E, "ids": [key]}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from vault.sources.base import StoredItems
from vault.sources.entities import Entity, EntityNode, entities_from_meta, entity_tree

__all__ = [
    "PAGE",
    "Key",
    "Match",
    "PageCollector",
    "RecordPage",
    "RecordReader",
    "SnapshotContents",
    "SourceBrowser",
    "StoredRecord",
    "StoredTable",
    "contents_from_meta",
]

#: records a page holds unless asked for another number
PAGE = 200

#: what names a record: a primary key, or a document's `_id` (an ObjectId as its hex text)
Key = int | str
#: (field, value): only the records whose `field` holds `value` (a parent's key)
Match = tuple[str, Key]


@dataclass(frozen=True)
class StoredTable:
    """A table or collection a snapshot holds, with what its capture counted."""

    name: str  # as a restore's `--only` names it ("users", "public.users", "db.coll")
    count: int | None  # rows or documents stored; None when the capture did not count
    estimated_count: int | None = None  # the server's estimate, when not counted
    bytes: int | None = None  # its size, when the capture measured one worth showing
    group: str | None = None  # what it belongs to (a MongoDB collection's database)

    @property
    def short_name(self) -> str:
        """The name within its group ("coll" of "db.coll")."""
        prefix = f"{self.group}."
        return self.name[len(prefix):] if self.group and self.name.startswith(prefix) \
            else self.name


@dataclass(frozen=True)
class SnapshotContents:
    """What a database snapshot holds, from its meta: its entity hierarchy with counts,
    then its tables or collections, and its stored items (for a snapshot with neither)."""

    record_noun: Literal["rows", "documents"]
    table_noun: Literal["tables", "collections"]
    tables: tuple[StoredTable, ...] = ()
    entities: tuple[Entity, ...] = ()
    entity_tree: tuple[EntityNode, ...] = ()
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredRecord:
    """One row or document: its key, and its other fields in stored order, each value
    as the source stores it (SQLite: int, float, str, bytes or None; MongoDB: the decoded
    BSON values; PostgreSQL: the COPY text of the value, None for NULL)."""

    key: Key
    fields: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class RecordPage:
    records: tuple[StoredRecord, ...] = ()
    total: int = 0  # how many matched; `records` holds those of the page asked for


class RecordReader(Protocol):
    """Reads the records of one stored snapshot, a page at a time."""

    def records(self, table: str, match: Match | None = None, *, limit: int = PAGE,
                offset: int = 0) -> RecordPage:
        """The records of `table` (as `StoredTable.name` or an entity's collection names
        it) in key order, or those whose field `match[0]` holds `match[1]`."""

    def close(self) -> None:
        """Remove whatever the reader put into its scratch directory."""


class SourceBrowser(Protocol):
    """How one source type shows the snapshots it stored."""

    def contents(self, stored: StoredItems) -> SnapshotContents: ...

    def reader(self, stored: StoredItems, scratch_dir: Path) -> RecordReader: ...


def contents_from_meta(meta: Mapping[str, Any], items: Iterable[str],
                       tables: Iterable[StoredTable], *,
                       record_noun: Literal["rows", "documents"] = "rows",
                       table_noun: Literal["tables", "collections"] = "tables"
                       ) -> SnapshotContents:
    """The contents every source shares: the entities its meta records (the shape every
    capture writes), beside the tables the source read from its own meta."""
    return SnapshotContents(record_noun, table_noun, tuple(tables),
                            entities_from_meta(meta), tuple(entity_tree(meta)), tuple(items))


@dataclass
class PageCollector:
    """Collects one page of records while counting every match."""

    limit: int = PAGE
    offset: int = 0
    _records: list[StoredRecord] = field(default_factory=list)
    _total: int = 0

    def add(self, key: Key, fields: Iterable[tuple[str, Any]]) -> None:
        if self.offset <= self._total < self.offset + self.limit:
            self._records.append(StoredRecord(key, tuple(fields)))
        self._total += 1

    @property
    def page(self) -> RecordPage:
        return RecordPage(tuple(self._records), self._total)
