"""Executing a MongoDB restore plan: collections recreated with their options and indexes,
documents written as the stored bytes (so types come back exactly as captured).

Every target is checked before anything is written, so a refused restore (mode "new" into
a collection that holds data) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vault.errors import OperationFailed, UsageError
from vault.sources.base import SourceRestoreRequest, SourceRestoreResult, StoredItems
from vault.sources.entities import Entity, entity_closure
from vault.sources.mongo_bson import (
    CorruptBSON,
    decode_document,
    iter_raw_documents,
    load_json,
    raw_documents,
)
from vault.sources.mongo_client import server_errors
from vault.sources.mongo_match import UnsupportedQuery, matches, value_key, values_at
from vault.sources.mongo_plan import CollectionRestore, PlanError, RestorePlan, plan_restore
from vault.sources.mongo_selection import BSON_SUFFIX, METADATA_SUFFIX, display_url, item_path

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

    from vault.sources.mongodb import MongoSource

__all__ = ["MongoRestoreRefused", "RestoreTargetNotEmpty", "restore"]

_BATCH_DOCUMENTS = 1000
_BATCH_BYTES = 8 << 20


class MongoRestoreRefused(UsageError):
    """cannot restore: {detail}"""


class RestoreTargetNotEmpty(OperationFailed):
    """cannot restore into {target}: it already holds data (restore with mode "replace", or into another database)"""  # noqa: E501


def restore(source: MongoSource, stored: StoredItems,
            request: SourceRestoreRequest) -> SourceRestoreResult:
    try:
        plan = plan_restore(stored.paths(), target=request.target, only=request.only,
                            query=request.query, mode=request.mode, entities=source.entities)
    except PlanError as exc:
        raise MongoRestoreRefused(str(exc)) from None
    client = source.connect(plan.target_url)
    where = display_url(plan.target_url or source.url)
    try:
        with server_errors(where):
            return _execute(client, stored, plan, where)
    except (UnsupportedQuery, CorruptBSON) as exc:
        raise MongoRestoreRefused(str(exc)) from None
    finally:
        client.close()


def _execute(client: MongoClient[Any], stored: StoredItems, plan: RestorePlan,
             where: str) -> SourceRestoreResult:
    _refuse_occupied_targets(client, plan)
    entity_ids = _stored_entity_ids(stored, plan)
    result = SourceRestoreResult(details={"target": where, "collections": {}})
    for item in plan.collections:
        documents, size = _restore_collection(client, stored, item, entity_ids)
        result.items += 1
        result.bytes += size
        result.details["collections"][item.target] = documents
    return result


def _refuse_occupied_targets(client: MongoClient[Any], plan: RestorePlan) -> None:
    for item in plan.collections:
        if item.action not in ("create", "insert"):
            continue
        database = client[item.target_database]
        names = database.list_collection_names(filter={"name": item.target_name})
        if names and database[item.target_name].find_one({}, {"_id": 1}) is not None:
            raise RestoreTargetNotEmpty(target=item.target)


def _metadata(stored: StoredItems, item: CollectionRestore) -> dict[str, Any]:
    path = item_path(item.source.database, item.source.name, METADATA_SUFFIX)
    with stored.open(path) as stream:
        loaded: dict[str, Any] = load_json(stream.read())
    return loaded


def _restore_collection(client: MongoClient[Any], stored: StoredItems, item: CollectionRestore,
                        entity_ids: dict[str, set[Any]]) -> tuple[int, int]:
    metadata = _metadata(stored, item)
    database = client[item.target_database]
    exists = bool(database.list_collection_names(filter={"name": item.target_name}))
    create = item.action in ("recreate", "create") or not exists
    if exists and create:
        database.drop_collection(item.target_name)
    if create:
        database.command({"create": item.target_name, **metadata.get("options", {})})
    if metadata.get("type") == "view" or not item.source.has_documents:
        return 0, 0
    documents = size = 0
    for batch in _batches(_selected(stored, item, entity_ids)):
        if item.action == "merge":
            ids = [decode_document(raw)["_id"] for raw in batch]
            database[item.target_name].delete_many({"_id": {"$in": ids}})
        database[item.target_name].insert_many(raw_documents(batch), ordered=True,
                                               bypass_document_validation=True)
        documents += len(batch)
        size += sum(len(raw) for raw in batch)
    if create:
        _create_indexes(database, item.target_name, metadata.get("indexes", []))
    return documents, size


def _create_indexes(database: Database[Any], name: str, indexes: list[dict[str, Any]]) -> None:
    # After the documents, as mongorestore does: one build instead of one update per insert.
    specs = [{k: v for k, v in spec.items() if k != "ns"} for spec in indexes
             if spec.get("name") != "_id_"]
    if specs:
        database.command({"createIndexes": name, "indexes": specs})


def _stored_documents(stored: StoredItems, database: str, name: str) -> Iterator[bytes]:
    path = item_path(database, name, BSON_SUFFIX)
    if path not in stored.paths():
        return
    with stored.open(path) as stream:
        yield from iter_raw_documents(stream, path)


def _selected(stored: StoredItems, item: CollectionRestore,
              entity_ids: dict[str, set[Any]]) -> Iterator[bytes]:
    selection = item.selection
    wanted_ids = {value_key(v) for v in _id_candidates(selection.ids)}
    for raw in _stored_documents(stored, item.source.database, item.source.name):
        if selection.kind == "all":
            yield raw
            continue
        document = decode_document(raw)
        if selection.kind == "ids":
            keep = value_key(document["_id"]) in wanted_ids
        elif selection.kind == "filter":
            keep = matches(document, selection.filter or {})
        else:
            keep = value_key(document["_id"]) in entity_ids.get(selection.entity or "", set())
        if keep:
            yield raw


def _id_candidates(ids: tuple[Any, ...]) -> list[Any]:
    from vault.sources.entities import id_candidates

    return id_candidates(ids)


def _stored_entity_ids(stored: StoredItems, plan: RestorePlan) -> dict[str, set[Any]]:
    """Entity name -> keys of the `_id`s an entity restore takes, found in the snapshot."""
    if plan.entity_selection is None:
        return {}

    def find_ids(entity: Entity, field: str, values: list[Any]) -> list[Any]:
        wanted = {value_key(v) for v in values}
        database, _, name = entity.collection.partition(".")
        found = []
        for raw in _stored_documents(stored, database, name):
            document = decode_document(raw)
            reached = values_at(document, field.split("."))
            flat = [v for value in reached for v in (value if isinstance(value, list)
                                                     else [value])]
            if any(value_key(v) in wanted for v in flat):
                found.append(document["_id"])
        return found

    closure = entity_closure(plan.entities, plan.entity_selection, find_ids)
    return {name: {value_key(v) for v in ids} for name, ids in closure.items()}


def _batches(raws: Iterator[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for raw in raws:
        batch.append(raw)
        size += len(raw)
        if len(batch) >= _BATCH_DOCUMENTS or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
