"""The records of an entity as a database snapshot stores them, read for the restore
tree: a project's rows, a project's sessions, a session's messages.

Read-only, from the snapshot (never the live database), a page at a time, in a worker
thread. One reader per source type, each over the snapshot's stored items:

* SQLite: the stored database file, written once to the scratch directory (removed on
  `close()`) and queried there;
* PostgreSQL: the table's stored COPY block, read line by line;
* MongoDB: the collection's stored BSON documents, read one by one.

A record's key is what an entity restore's query names (`{"entity": E, "ids": [key]}`):
the row's primary key, or the document's `_id` (an ObjectId as its hex text, which the
MongoDB restore reads back as an ObjectId).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vault.foundation.sqlite_readonly import open_read_only
from vault.sources.base import StoredItems
from vault.sources.entities import Entity

__all__ = ["Record", "RecordPage", "RecordReader", "entities_of", "record_reader"]

#: records listed under one node; the rest are counted
PAGE = 200
#: characters of a record's other values shown beside its key
PREVIEW = 40

Key = int | str


@dataclass(frozen=True)
class Record:
    key: Key
    preview: str  # a few of its other values, to recognise it by


@dataclass
class RecordPage:
    records: list[Record] = field(default_factory=list)
    total: int = 0  # how many matched (records holds the first PAGE)


class RecordReader(Protocol):
    def records(self, entity: Entity, parent: tuple[str, Key] | None) -> RecordPage:
        """The entity's records, or those whose field `parent[0]` holds `parent[1]`."""

    def close(self) -> None: ...


def entities_of(meta: Mapping[str, Any]) -> tuple[Entity, ...]:
    """The entity hierarchy a snapshot was taken with (its meta records it)."""
    return tuple(Entity(str(r["name"]), str(r["collection"]), r.get("parent"), r.get("key"),
                        r.get("date_field")) for r in meta.get("entities") or [])


def record_reader(source_type: str, stored: StoredItems, scratch_dir: Path
                  ) -> RecordReader | None:
    if source_type == "sqlite":
        return SqliteRecords(stored, scratch_dir)
    if source_type == "postgresql":
        return PostgresRecords(stored)
    if source_type == "mongodb":
        return MongoRecords(stored)
    return None


def _preview(values: Iterator[Any] | list[Any]) -> str:
    shown = " ".join("-" if v is None else f"<{len(v)} bytes>" if isinstance(v, bytes)
                     else str(v) for v in values)
    return shown if len(shown) <= PREVIEW else shown[:PREVIEW - 1] + "…"


class _Page:
    """Collects a page of records while counting every match."""

    def __init__(self) -> None:
        self.page = RecordPage()

    def add(self, key: Key, values: list[Any]) -> None:
        self.page.total += 1
        if len(self.page.records) < PAGE:
            self.page.records.append(Record(key, _preview(values)))


class SqliteRecords:
    def __init__(self, stored: StoredItems, scratch_dir: Path) -> None:
        self.stored = stored
        self.scratch_dir = scratch_dir
        self._workdir: Path | None = None

    def _database(self) -> Path:
        from vault.sources.sqlite.stored import stored_item_path, write_item

        if self._workdir is None:
            self.scratch_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            workdir = Path(tempfile.mkdtemp(prefix=".vault-tui-", dir=self.scratch_dir))
            try:
                write_item(self.stored, stored_item_path(self.stored), workdir / "copy.db")
            except BaseException:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            self._workdir = workdir
        return self._workdir / "copy.db"

    def records(self, entity: Entity, parent: tuple[str, Key] | None) -> RecordPage:
        from vault.sources.sqlite.db import quote
        from vault.sources.sqlite.entities import key_column

        conn = open_read_only(self._database())
        try:
            table = quote(entity.collection)
            key = key_column(conn, entity.collection)
            where, params = "", list[Any]()
            if parent is not None:
                where, params = f" WHERE {quote(parent[0])} = ?", [parent[1]]
            cursor = conn.execute(f"SELECT {key}, * FROM {table}{where} ORDER BY {key}",
                                  params)
            key_name = key.strip('"').replace('""', '"')
            others = [i for i, column in enumerate(cursor.description)
                      if i > 0 and column[0] != key_name]
            found = _Page()
            for row in cursor:
                found.add(row[0], [row[i] for i in others])
            return found.page
        finally:
            conn.close()

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


class PostgresRecords:
    def __init__(self, stored: StoredItems) -> None:
        self.stored = stored

    def records(self, entity: Entity, parent: tuple[str, Key] | None) -> RecordPage:
        from vault.sources.postgresql.rows_plan import (
            CopyBlock,
            data_lines,
            python_codec,
            unescape_copy_field,
        )
        from vault.sources.postgresql.tools import TableRef, select_tables

        entries = {TableRef(str(t["schema"]), str(t["name"])): t
                   for t in self.stored.meta.get("tables") or []}
        [table] = select_tables(list(entries), [entity.collection])
        entry = entries[table]
        key_columns = list(entry.get("key") or [])
        block = CopyBlock(self._read(str(entry["item"])), table.qualified)
        columns = block.columns()
        key_at = columns.index(key_columns[0]) if len(key_columns) == 1 else 0
        match_at = columns.index(parent[0]) if parent is not None else None
        codec = python_codec(self.stored.meta)
        found = _Page()
        for line in data_lines(block.rows()):
            values = [unescape_copy_field(f) for f in line.decode(codec, "replace").split("\t")]
            if match_at is not None and parent is not None and \
                    values[match_at] != str(parent[1]):
                continue
            key = values[key_at]
            if key is not None:
                found.add(key, [v for i, v in enumerate(values) if i != key_at])
        return found.page

    def _read(self, path: str) -> Iterator[bytes]:
        with self.stored.open(path) as stream:
            while part := stream.read(1 << 20):
                yield part

    def close(self) -> None:
        pass


class MongoRecords:
    def __init__(self, stored: StoredItems) -> None:
        self.stored = stored

    def records(self, entity: Entity, parent: tuple[str, Key] | None) -> RecordPage:
        from bson import ObjectId

        from vault.sources.entities import id_candidates
        from vault.sources.mongodb.bson_items import decode_document, iter_raw_documents
        from vault.sources.mongodb.match import value_key, values_at
        from vault.sources.mongodb.selection import BSON_SUFFIX, item_path

        database, _, name = entity.collection.partition(".")
        path = item_path(database, name, BSON_SUFFIX)
        found = _Page()
        if path not in self.stored.paths():
            return found.page
        wanted = None if parent is None else \
            {value_key(v) for v in id_candidates([parent[1]])}
        with self.stored.open(path) as stream:
            for raw in iter_raw_documents(stream, path):
                document = decode_document(raw)
                if wanted is not None and parent is not None:
                    reached = values_at(document, parent[0].split("."))
                    flat = [v for value in reached
                            for v in (value if isinstance(value, list) else [value])]
                    if not any(value_key(v) in wanted for v in flat):
                        continue
                ident = document.get("_id")
                key: Key | None = str(ident) if isinstance(ident, ObjectId) else \
                    ident if isinstance(ident, (int, str)) and not isinstance(ident, bool) \
                    else None
                if key is not None:  # an _id no query can name is not offered
                    found.add(key, [v for k, v in document.items() if k != "_id"])
        return found.page

    def close(self) -> None:
        pass
