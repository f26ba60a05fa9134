"""Browsing a stored PostgreSQL snapshot: its tables with their row counts and sizes (from
the meta), and the rows of a table's stored COPY block, read line by line.

A value is its COPY text (what the snapshot stores; NULL is None): the column types are
only in the pg_dump schema item, which is not read to browse. A record's key is its
one-column primary key's text, which an entity restore's query takes as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vault.sources import browse
from vault.sources.base import StoredItems
from vault.sources.postgresql.rows_plan import (
    CopyBlock,
    data_lines,
    python_codec,
    unescape_copy_field,
)
from vault.sources.postgresql.tools import TableRef, select_tables

__all__ = ["PostgresBrowser", "PostgresRecords"]


def _stored_table(entry: dict[str, Any]) -> browse.StoredTable:
    rows, estimate, size = entry.get("rows"), entry.get("estimated_rows"), entry.get("bytes")
    return browse.StoredTable(f"{entry['schema']}.{entry['name']}",
                              None if rows is None else int(rows),
                              None if estimate is None else int(estimate),
                              int(size) if size else None)  # 0: not measured, nothing to show


class PostgresBrowser:
    def contents(self, stored: StoredItems) -> browse.SnapshotContents:
        tables = [_stored_table(entry) for entry in stored.meta.get("tables") or []]
        return browse.contents_from_meta(stored.meta, stored.paths(), tables)

    def reader(self, stored: StoredItems, scratch_dir: Path) -> PostgresRecords:
        return PostgresRecords(stored)


class PostgresRecords:
    def __init__(self, stored: StoredItems) -> None:
        self.stored = stored

    def records(self, table: str, match: browse.Match | None = None, *,
                limit: int = browse.PAGE, offset: int = 0) -> browse.RecordPage:
        entries = {TableRef(str(t["schema"]), str(t["name"])): t
                   for t in self.stored.meta.get("tables") or []}
        [found_table] = select_tables(list(entries), [table])
        entry = entries[found_table]
        key_columns = list(entry.get("key") or [])
        block = CopyBlock(self._read(str(entry["item"])), found_table.qualified)
        columns = block.columns()
        key_at = columns.index(key_columns[0]) if len(key_columns) == 1 else 0
        match_at = columns.index(match[0]) if match is not None else None
        wanted = None if match is None else str(match[1])
        codec = python_codec(self.stored.meta)
        found = browse.PageCollector(limit, offset)
        for line in data_lines(block.rows()):
            values = [unescape_copy_field(f) for f in line.decode(codec, "replace").split("\t")]
            if match_at is not None and values[match_at] != wanted:
                continue
            key = values[key_at]
            if key is not None:
                found.add(key, ((name, value) for i, (name, value)
                                in enumerate(zip(columns, values, strict=False))
                                if i != key_at))
        return found.page

    def _read(self, path: str) -> Iterator[bytes]:
        with self.stored.open(path) as stream:
            while part := stream.read(1 << 20):
                yield part

    def close(self) -> None:
        pass  # nothing is written to read a COPY block


BROWSER = PostgresBrowser()
