"""Browsing a stored MongoDB snapshot: its collections by database with their document
counts and sizes (from the meta), and a collection's stored BSON documents, decoded one
by one.

A document's key is its `_id`: an ObjectId as its hex text (which a MongoDB entity
restore reads back as an ObjectId), an int or a str as it is; a document whose `_id` no
query can name is neither listed nor counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vault.sources import browse
from vault.sources.base import StoredItems
from vault.sources.entities import id_candidates
from vault.sources.mongodb.bson_items import decode_document, iter_raw_documents
from vault.sources.mongodb.match import value_key, values_at
from vault.sources.mongodb.selection import BSON_SUFFIX, item_path

__all__ = ["MongoBrowser", "MongoRecords"]


class MongoBrowser:
    def contents(self, stored: StoredItems) -> browse.SnapshotContents:
        tables = [browse.StoredTable(full, int(stats.get("documents", 0)),
                                     bytes=int(stats.get("bytes") or 0),
                                     group=full.partition(".")[0])
                  for full, stats in sorted((stored.meta.get("collections") or {}).items())]
        return browse.contents_from_meta(stored.meta, stored.paths(), tables,
                                         record_noun="documents", table_noun="collections")

    def reader(self, stored: StoredItems, scratch_dir: Path) -> MongoRecords:
        return MongoRecords(stored)


def document_key(document: dict[str, Any]) -> browse.Key | None:
    """What names the document in an entity restore's query, if anything can."""
    from bson import ObjectId

    ident = document.get("_id")
    if isinstance(ident, ObjectId):
        return str(ident)
    if isinstance(ident, (int, str)) and not isinstance(ident, bool):
        return ident
    return None


def _holds(document: dict[str, Any], path: str, wanted: set[tuple[str, Any]]) -> bool:
    """Whether the field at `path` holds one of the `wanted` values (or an array does)."""
    reached = values_at(document, path.split("."))
    flat = [v for value in reached for v in (value if isinstance(value, list) else [value])]
    return any(value_key(v) in wanted for v in flat)


class MongoRecords:
    def __init__(self, stored: StoredItems) -> None:
        self.stored = stored

    def records(self, table: str, match: browse.Match | None = None, *,
                limit: int = browse.PAGE, offset: int = 0) -> browse.RecordPage:
        database, _, name = table.partition(".")
        path = item_path(database, name, BSON_SUFFIX)
        found = browse.PageCollector(limit, offset)
        if path not in self.stored.paths():
            return found.page
        wanted = None if match is None else \
            {value_key(v) for v in id_candidates([match[1]])}
        with self.stored.open(path) as stream:
            for raw in iter_raw_documents(stream, path):
                document = decode_document(raw)
                if match is not None and wanted is not None and \
                        not _holds(document, match[0], wanted):
                    continue
                key = document_key(document)
                if key is not None:
                    found.add(key, ((k, v) for k, v in document.items() if k != "_id"))
        return found.page

    def close(self) -> None:
        pass  # documents are decoded as they are read: nothing is written


BROWSER = MongoBrowser()
