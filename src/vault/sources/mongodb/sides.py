"""Both sides of a MongoDB restore, within its selection: the snapshot's stored documents
and the target's (all, some `_id`s, a filter, an entity's closure), each as `_id` ->
sha256 of the raw BSON. A collection whose documents repeat an `_id` is read whole."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vault.errors import OperationFailed, UsageError
from vault.sources.base import StoredItems
from vault.sources.entities import Entity, entity_closure, id_candidates, subtree
from vault.sources.mongodb.bson_items import (
    RAW_OPTIONS,
    decode_document,
    iter_raw_documents,
    load_json,
)
from vault.sources.mongodb.match import matches, value_key, values_at
from vault.sources.mongodb.plan import CollectionPlan, CollectionRestore, DocKey, fingerprint
from vault.sources.mongodb.remap import id_text
from vault.sources.mongodb.selection import BSON_SUFFIX, METADATA_SUFFIX, item_path
from vault.sources.mongodb.whole import WholeCollection, read_whole, repeated_id

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.collection import Collection


class MongoRestoreRefused(UsageError):
    """cannot restore: {detail}"""


class RestoreTargetNotEmpty(OperationFailed):
    """cannot restore into {target}: it already holds data (restore with mode "overwrite" or "merge", or into another database)"""  # noqa: E501


class RestoreConflicts(OperationFailed):
    """cannot restore: {count} document(s) differ between the snapshot and the target ({where}); nothing was written (choose --on-conflict skip, overwrite or rename)"""  # noqa: E501


@dataclass
class Side:
    """One collection, both sides, within the selection: key -> fingerprint."""

    item: CollectionRestore
    exists: bool  # the target collection exists now
    snapshot: dict[DocKey, str] = field(default_factory=dict)
    target: dict[DocKey, str] = field(default_factory=dict)
    ids: dict[DocKey, Any] = field(default_factory=dict)  # the `_id` values, both sides
    sizes: dict[DocKey, int] = field(default_factory=dict)
    texts: dict[DocKey, str] = field(default_factory=dict)
    whole: WholeCollection | None = None  # restored whole: its documents repeat an _id


def read_sides(client: MongoClient[Any], stored: StoredItems, item: CollectionRestore,
                stored_keys: dict[str, set[Any]], target_ids: dict[str, list[Any]],
                mode: str, remap: bool) -> Side:
    database = client[item.target_database]
    exists = bool(database.list_collection_names(filter={"name": item.target_name}))
    side = Side(item, exists)
    for raw in selected(stored, item, stored_keys):
        key, _id = document_key(item, raw)
        if key in side.snapshot:
            return _whole_side(client, stored, item, exists, mode,
                               repeated_id("snapshot", id_text(_id)))
        side.snapshot[key], side.ids[key] = fingerprint(raw), _id
        side.sizes[key], side.texts[key] = len(raw), id_text(_id)
    if remap or not exists:
        return side  # a new copy's ids are new: nothing in the target is within it
    collection = database.get_collection(item.target_name, codec_options=RAW_OPTIONS)
    if mode == "new-target":
        if collection.find_one({}, {"_id": 1}) is not None:
            raise RestoreTargetNotEmpty(target=item.target)
        return side
    for raw in _target_documents(collection, item, target_ids):
        key, _id = document_key(item, raw)
        if key in side.target:
            return _whole_side(client, stored, item, exists, mode,
                               repeated_id("target", id_text(_id)))
        side.target[key] = fingerprint(raw)
        side.ids.setdefault(key, _id)
        side.texts.setdefault(key, id_text(_id))
    return side


def _whole_side(client: MongoClient[Any], stored: StoredItems, item: CollectionRestore,
                exists: bool, mode: str, why: str) -> Side:
    """A collection restored whole; only a selection of its documents is refused (they
    cannot be picked out by `_id`)."""
    if item.selection.kind != "all":
        raise MongoRestoreRefused(detail=f"{item.source.full_name}: {why}, so its documents "
                                  "cannot be picked out by _id; restore the whole collection")
    collection = None
    if exists:
        collection = client[item.target_database].get_collection(
            item.target_name, codec_options=RAW_OPTIONS)
        if mode == "new-target" and collection.find_one({}, {"_id": 1}) is not None:
            raise RestoreTargetNotEmpty(target=item.target)
    documents = stored_documents(stored, item.source.database, item.source.name)
    return Side(item, exists, whole=read_whole(why, documents, collection))


def document_key(item: CollectionRestore, raw: bytes) -> tuple[DocKey, Any]:
    _id = decode_document(raw)["_id"]
    return (item.target, value_key(_id)), _id


def _target_documents(collection: Collection[Any], item: CollectionRestore,
                      target_ids: dict[str, list[Any]]) -> Iterator[bytes]:
    """The target's documents within the same selection as the snapshot's."""
    selection = item.selection
    query: dict[str, Any] = {}
    if selection.kind == "ids":
        query = {"_id": {"$in": id_candidates(selection.ids)}}
    elif selection.kind == "entity":
        query = {"_id": {"$in": target_ids.get(selection.entity or "", [])}}
    for document in collection.find(query, sort=[("_id", 1)]):
        raw: bytes = document.raw
        # A filter is evaluated here, as on the snapshot's side, so both sides agree on it.
        if selection.kind != "filter" or matches(decode_document(raw), selection.filter or {}):
            yield raw


def stored_documents(stored: StoredItems, database: str, name: str) -> Iterator[bytes]:
    path = item_path(database, name, BSON_SUFFIX)
    if path not in stored.paths():
        return
    with stored.open(path) as stream:
        yield from iter_raw_documents(stream, path)


def selected(stored: StoredItems, item: CollectionRestore,
              entity_keys: dict[str, set[Any]]) -> Iterator[bytes]:
    selection = item.selection
    wanted_ids = {value_key(v) for v in id_candidates(selection.ids)}
    for raw in stored_documents(stored, item.source.database, item.source.name):
        if selection.kind == "all":
            yield raw
            continue
        document = decode_document(raw)
        if selection.kind == "ids":
            keep = value_key(document["_id"]) in wanted_ids
        elif selection.kind == "filter":
            keep = matches(document, selection.filter or {})
        else:
            keep = value_key(document["_id"]) in entity_keys.get(selection.entity or "", set())
        if keep:
            yield raw


def stored_entity_ids(stored: StoredItems, plan: CollectionPlan) -> dict[str, list[Any]]:
    """Entity name -> the `_id`s an entity restore takes, found in the snapshot."""
    if plan.entity_selection is None:
        return {}

    def find_ids(entity: Entity, field: str, values: list[Any]) -> list[Any]:
        wanted = {value_key(v) for v in values}
        database, _, name = entity.collection.partition(".")
        found = []
        for raw in stored_documents(stored, database, name):
            document = decode_document(raw)
            reached = values_at(document, field.split("."))
            flat = [v for value in reached for v in (value if isinstance(value, list)
                                                     else [value])]
            if any(value_key(v) in wanted for v in flat):
                found.append(document["_id"])
        return found

    return entity_closure(plan.entities, plan.entity_selection, find_ids)


def target_entity_ids(client: MongoClient[Any], plan: CollectionPlan,
                       stored_ids: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Entity name -> the `_id`s the same entity selection reaches in the target: the
    selected ids, then the documents whose key holds a parent selected on either side (so
    a session added to the project since the snapshot, or one pointing at a deleted
    session, is within the selection too)."""
    selection = plan.entity_selection
    if selection is None:
        return {}
    by_stored = {item.source.full_name: item for item in plan.collections}
    found: dict[str, list[Any]] = {}
    for entity in subtree(plan.entities, selection.entity):
        item = by_stored.get(entity.collection)
        if entity.name == selection.entity:
            path, values = "_id", id_candidates(selection.ids)
        else:
            assert entity.parent is not None and entity.key is not None
            path = entity.key
            values = [*stored_ids.get(entity.parent, []), *found.get(entity.parent, [])]
        if item is None or not values:
            found[entity.name] = []
            continue
        collection = client[item.target_database][item.target_name]
        found[entity.name] = [d["_id"] for d in collection.find({path: {"$in": values}},
                                                                {"_id": 1})]
    return found


def metadata_of(stored: StoredItems, item: CollectionRestore) -> dict[str, Any]:
    path = item_path(item.source.database, item.source.name, METADATA_SUFFIX)
    with stored.open(path) as stream:
        loaded: dict[str, Any] = load_json(stream.read())
    return loaded
