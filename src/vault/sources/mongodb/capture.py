"""Reading a MongoDB source: the items of a capture, and the estimate before one."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from vault.sources.base import Capture, CaptureContext, SourceEstimate, SourceItem, stream_of
from vault.sources.entities import Entity, entity_closure, subtree
from vault.sources.mongodb.bson_items import RAW_OPTIONS, decode_document, dump_json
from vault.sources.mongodb.client import server_errors
from vault.sources.mongodb.match import values_at
from vault.sources.mongodb.selection import (
    BSON_SUFFIX,
    METADATA_SUFFIX,
    collection_query,
    item_path,
    url_database,
)

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.client_session import ClientSession

    from vault.sources.mongodb.source import MongoSource

__all__ = ["capture", "estimate", "selected_collections"]

_PIECE = 256 * 1024  # documents are joined into pieces of this size for the stream
_BATCH = 1000


@dataclass
class _Stats:
    """What a collection's stream saw, written into the capture's meta as it ends."""

    documents: int = 0
    size: int = 0
    dates: dict[str, list[datetime]] = field(default_factory=dict)  # field -> [first, last]

    def add(self, raw: bytes, date_fields: tuple[str, ...]) -> None:
        self.documents += 1
        self.size += len(raw)
        if not date_fields:
            return
        document = decode_document(raw)
        for name in date_fields:
            for value in values_at(document, name.split(".")):
                if isinstance(value, datetime):
                    bounds = self.dates.setdefault(name, [value, value])
                    bounds[0], bounds[1] = min(bounds[0], value), max(bounds[1], value)

    def as_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"documents": self.documents, "bytes": self.size}
        if self.dates:
            out["dates"] = {name: {"first": first.isoformat(), "last": last.isoformat()}
                            for name, (first, last) in self.dates.items()}
        return out


def selected_collections(client: MongoClient[Any], source: MongoSource
                         ) -> list[tuple[str, dict[str, Any]]]:
    """(database, listCollections entry) of every collection and view the filters select,
    sorted, so that a capture's items come in a stable order."""
    filters = source.filters
    default = url_database(source.url)
    reach: set[str] | None = None
    if filters.entity is not None:
        reach = {e.collection for e in subtree(source.entities, filters.entity.entity)}
    chosen = []
    for database in sorted(client.list_database_names()):
        if not filters.wants_database(database, default):
            continue
        for info in client[database].list_collections():
            name = info["name"]
            if filters.wants_collection(database, name) and (
                    reach is None or f"{database}.{name}" in reach):
                chosen.append((database, dict(info)))
    return sorted(chosen, key=lambda pair: (pair[0], pair[1]["name"]))


def _metadata(client: MongoClient[Any], database: str, info: Mapping[str, Any]) -> bytes:
    indexes: list[Any] = []
    if info.get("type", "collection") != "view":
        indexes = sorted(client[database][info["name"]].list_indexes(),
                         key=lambda spec: str(spec["name"]))
    return dump_json({"collectionName": info["name"], "type": info.get("type", "collection"),
                      "options": info.get("options", {}), "indexes": indexes})


@contextmanager
def capture(client: MongoClient[Any], source: MongoSource,
            context: CaptureContext) -> Iterator[Capture]:
    hello = client.admin.command("hello")
    # Snapshot reads need a replica set (or mongos); a standalone mongod reads each
    # collection as it is while it is read.
    consistent = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    session = client.start_session(snapshot=True) if consistent else None
    try:
        collections = selected_collections(client, source)
        if session is not None:
            _pin_snapshot(client, session, collections)
        entity_ids = _entity_ids(client, source, session)
        meta: dict[str, Any] = {
            "server": {"version": client.server_info().get("version")},
            "consistency": "snapshot" if consistent else "per-collection",
            "filters": source.filters.describe(),
            "collections": {},
        }
        if source.entities:
            meta["entities"] = [_entity_meta(e, None) for e in source.entities]
        protectors = _protectors(source, context, collections, meta)
        items: list[SourceItem] = []
        for database, info in collections:
            items += _items(client, source, session, database, info, entity_ids, meta,
                            protectors.get(f"{database}.{info['name']}"))
        yield Capture(items, meta)
    finally:
        if session is not None:
            session.end_session()


def _pin_snapshot(client: MongoClient[Any], session: ClientSession,
                  collections: list[tuple[str, dict[str, Any]]]) -> None:
    """A snapshot session's point in time is fixed by its first read: read now, so the
    capture's point is when it was opened (a group opens every member's at once), not when
    its first collection is streamed."""
    found = next(((database, info["name"]) for database, info in collections
                  if info.get("type", "collection") != "view"), None)
    if found is not None:
        client[found[0]][found[1]].find_one({}, {"_id": 1}, session=session)


def _protectors(source: MongoSource, context: CaptureContext,
                collections: list[tuple[str, dict[str, Any]]], meta: dict[str, Any]
                ) -> dict[str, Callable[[bytes], bytes]]:
    """"db.coll" -> what replaces the secrets of its documents (mongo_secrets)."""
    if source.secrets is None:
        return {}
    from vault.sources.mongodb.secrets import plan_collections, protector

    captured = [f"{database}.{info['name']}" for database, info in collections
                if info.get("type", "collection") != "view"]
    plans = plan_collections(source.secrets, captured,
                             source.filters.entity is not None or source.secrets_optional)
    meta["secret_fields"] = {"mode": source.secrets.mode, "collections": plans}
    return {plan["collection"]: protector(plan, source.secrets.mode, context.sealer,
                                          source.name) for plan in plans}


def _items(client: MongoClient[Any], source: MongoSource, session: ClientSession | None,
           database: str, info: dict[str, Any], entity_ids: dict[str, list[Any]],
           meta: dict[str, Any], protect: Callable[[bytes], bytes] | None = None
           ) -> list[SourceItem]:
    name = info["name"]
    full_name = f"{database}.{name}"
    metadata = _opener(source, lambda: _metadata(client, database, info))
    items = [SourceItem(item_path(database, name, METADATA_SUFFIX), metadata)]
    if info.get("type", "collection") == "view":
        return items
    query = collection_query(source.filters, database, name)
    entity = next((e for e in source.entities if e.collection == full_name), None)
    if entity is not None and entity.name in entity_ids:
        selected = {"_id": {"$in": entity_ids[entity.name]}}
        query = {"$and": [query, selected]} if query else selected
    date_fields = tuple(dict.fromkeys(f for f in (
        source.filters.date_field, entity.date_field if entity else None) if f))

    def documents() -> Iterator[bytes]:
        stats = _Stats()
        collection = client[database].get_collection(name, codec_options=RAW_OPTIONS)
        cursor = collection.find(query, sort=[("_id", 1)], session=session,
                                 batch_size=_BATCH)
        piece = bytearray()
        try:
            with server_errors(source.where):
                for document in cursor:
                    raw = document.raw if protect is None else protect(document.raw)
                    stats.add(raw, date_fields)
                    piece += raw
                    if len(piece) >= _PIECE:
                        yield bytes(piece)
                        piece.clear()
            yield bytes(piece)
            meta["collections"][full_name] = stats.as_meta()
            _update_entities(meta, full_name, stats)
        finally:
            cursor.close()

    items.append(SourceItem(item_path(database, name, BSON_SUFFIX), stream_of(documents)))
    return items


def _opener(source: MongoSource, content: Callable[[], bytes]
            ) -> Callable[[], AbstractContextManager[BinaryIO]]:
    @contextmanager
    def open_bytes() -> Iterator[BinaryIO]:
        with server_errors(source.where):
            data = content()
        yield io.BytesIO(data)

    return open_bytes


def _entity_ids(client: MongoClient[Any], source: MongoSource,
                session: ClientSession | None) -> dict[str, list[Any]]:
    """For a selective backup of one entity: entity name -> the `_id`s it takes."""
    selection = source.filters.entity
    if selection is None:
        return {}

    def find_ids(entity: Entity, field: str, values: list[Any]) -> list[Any]:
        database, _, name = entity.collection.partition(".")
        cursor = client[database][name].find({field: {"$in": values}}, {"_id": 1},
                                             session=session, sort=[("_id", 1)])
        return [document["_id"] for document in cursor]

    return entity_closure(source.entities, selection, find_ids)


def _entity_meta(entity: Entity, stats: _Stats | None) -> dict[str, Any]:
    record: dict[str, Any] = {"name": entity.name, "collection": entity.collection,
                              "parent": entity.parent, "key": entity.key,
                              "date_field": entity.date_field,
                              "documents": stats.documents if stats else 0}
    if stats and entity.date_field and entity.date_field in stats.dates:
        first, last = stats.dates[entity.date_field]
        record |= {"first": first.isoformat(), "last": last.isoformat()}
    return record


def _update_entities(meta: dict[str, Any], full_name: str, stats: _Stats) -> None:
    for index, record in enumerate(meta.get("entities", [])):
        if record["collection"] == full_name:
            entity = Entity(record["name"], full_name, record["parent"], record["key"],
                            record["date_field"])
            meta["entities"][index] = _entity_meta(entity, stats)


def estimate(client: MongoClient[Any], source: MongoSource) -> SourceEstimate:
    """Sizes and counts from collStats: before filters, so an upper bound when filtered."""
    total = documents = 0
    details: dict[str, Any] = {"collections": {}}
    for database, info in selected_collections(client, source):
        if info.get("type", "collection") == "view":
            continue
        stats = client[database].command("collStats", info["name"])
        count, size = int(stats.get("count", 0)), int(stats.get("size", 0))
        details["collections"][f"{database}.{info['name']}"] = {"documents": count,
                                                                "bytes": size}
        total += size
        documents += count
    details["documents"] = documents
    details["filtered"] = bool(source.filters.describe())
    return SourceEstimate(bytes=total, items=len(details["collections"]), details=details)
