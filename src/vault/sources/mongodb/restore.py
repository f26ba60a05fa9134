"""Executing a MongoDB restore, document by document: plan first, then exactly that plan.

Every selected collection is read on both sides (the snapshot's stored documents, and the
target's documents within the same selection: all, some `_id`s, a filter, an entity's
closure) as `_id` -> sha256 of the raw BSON. `vault.planning.restore_plan` decides per document;
a `fail` conflict, a clash or a non-empty target for mode new-target refuses the restore
before anything is written. A dry run returns the plan; a real one carries it out and
returns it too. Documents are written as the stored bytes (types come back exactly as
captured), except where a new `_id` is given (`remap_ids`, `--on-conflict rename`): those
are re-encoded with their `_id` and declared references rewritten. A collection whose
documents repeat an `_id` (time-series) is restored whole instead (`mongo_whole`), and
the plan says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vault.errors import OperationFailed, UsageError
from vault.planning.restore_plan import Action, RestorePlan, plan_whole
from vault.sources.base import SourceRestoreRequest, SourceRestoreResult, StoredItems
from vault.sources.entities import (
    Entity,
    entity_closure,
    id_candidates,
    renamed_fields,
    subtree,
)
from vault.sources.mongodb.bson_items import (
    RAW_OPTIONS,
    CorruptBSON,
    decode_document,
    iter_raw_documents,
    load_json,
)
from vault.sources.mongodb.client import server_errors
from vault.sources.mongodb.match import UnsupportedQuery, matches, value_key, values_at
from vault.sources.mongodb.plan import (
    CollectionPlan,
    CollectionRestore,
    DocKey,
    PlanError,
    fingerprint,
    plan_documents,
    plan_restore,
)
from vault.sources.mongodb.remap import IdAllocator, UnsupportedId, id_text, rewrite_document
from vault.sources.mongodb.selection import BSON_SUFFIX, METADATA_SUFFIX, display_url, item_path
from vault.sources.mongodb.whole import (
    WholeCollection,
    create_indexes,
    read_whole,
    repeated_id,
    write_whole,
)

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.collection import Collection

    from vault.sources.mongodb.source import MongoSource

__all__ = ["MongoRestoreRefused", "RestoreConflicts", "RestoreTargetNotEmpty", "restore"]

_BATCH_DOCUMENTS = 1000
_BATCH_BYTES = 8 << 20


class MongoRestoreRefused(UsageError):
    """cannot restore: {detail}"""


class RestoreTargetNotEmpty(OperationFailed):
    """cannot restore into {target}: it already holds data (restore with mode "overwrite" or "merge", or into another database)"""  # noqa: E501


class RestoreConflicts(OperationFailed):
    """cannot restore: {count} document(s) differ between the snapshot and the target ({where}); nothing was written (choose --on-conflict skip, overwrite or rename)"""  # noqa: E501


@dataclass
class _Side:
    """One collection, both sides, within the selection: key -> fingerprint."""

    item: CollectionRestore
    exists: bool  # the target collection exists now
    snapshot: dict[DocKey, str] = field(default_factory=dict)
    target: dict[DocKey, str] = field(default_factory=dict)
    ids: dict[DocKey, Any] = field(default_factory=dict)  # the `_id` values, both sides
    sizes: dict[DocKey, int] = field(default_factory=dict)
    texts: dict[DocKey, str] = field(default_factory=dict)
    whole: WholeCollection | None = None  # restored whole: its documents repeat an _id


def restore(source: MongoSource, stored: StoredItems,
            request: SourceRestoreRequest) -> SourceRestoreResult:
    try:
        plan = plan_restore(stored.paths(), target=request.target, only=request.only,
                            query=request.query, entities=source.entities)
    except PlanError as exc:
        raise MongoRestoreRefused(detail=str(exc)) from None
    client = source.connect(plan.target_url)
    where = display_url(plan.target_url or source.url)
    try:
        with server_errors(where):
            return _restore(client, stored, plan, request, where)
    except (UnsupportedQuery, CorruptBSON, UnsupportedId) as exc:
        raise MongoRestoreRefused(detail=str(exc)) from None
    finally:
        client.close()


def _restore(client: MongoClient[Any], stored: StoredItems, cplan: CollectionPlan,
             request: SourceRestoreRequest, where: str) -> SourceRestoreResult:
    mode = request.plan_mode
    found = renamed_fields(request.rename, request.remap_ids, cplan.entity_selection,
                           cplan.entities)
    if found is not None and "_id" in found[1]:
        raise MongoRestoreRefused(detail="--rename cannot set _id: the copy's ids are new ones")
    renamed = {found[0].collection: found[1]} if found is not None else {}
    stored_ids = _stored_entity_ids(stored, cplan)
    stored_keys = {name: {value_key(v) for v in ids} for name, ids in stored_ids.items()}
    target_ids = {} if request.remap_ids else _target_entity_ids(client, cplan, stored_ids)
    sides = [_read_sides(client, stored, item, stored_keys, target_ids, mode, request.remap_ids)
             for item in cplan.collections]
    keyed = [side for side in sides if side.whole is None]
    plan = plan_documents(
        {k: v for side in keyed for k, v in side.snapshot.items()},
        {k: v for side in keyed for k, v in side.target.items()},
        mode=mode, on_conflict=request.on_conflict,
        texts={k: v for side in keyed for k, v in side.texts.items()},
        sizes={k: v for side in keyed for k, v in side.sizes.items()})
    if plan.conflicts:
        per = _count_by_group(item.group for item in plan.conflicts)
        raise RestoreConflicts(count=len(plan.conflicts),
                               where=", ".join(f"{g}: {n}" for g, n in per.items()))
    actions: dict[DocKey, Action] = {}
    for side in keyed:
        for key in [*side.snapshot, *side.target]:
            actions.setdefault(key, "skip")
    for planned, key in zip(plan.items, _plan_keys(keyed, mode), strict=True):
        actions[key] = planned.action
    for side in sides:
        if side.whole is not None:
            plan.items += plan_whole(side.item.target, side.whole.snapshot, side.whole.target,
                                     mode=mode)
            plan.whole[side.item.target] = side.whole.why
    new_ids = _new_ids(client, keyed, actions, request.remap_ids)
    details: dict[str, Any] = {"target": where, "plan": plan.to_json(),
                               "collections": _written_counts(plan, sides)}
    if new_ids:
        details["id_map"] = _id_map_report(sides, new_ids)
    result = SourceRestoreResult(details=details, plan=plan)
    if request.dry_run:
        return result
    references = _references(cplan, new_ids) if request.remap_ids else {}
    for side in sides:
        if side.whole is not None:
            item = side.item
            size = write_whole(client[item.target_database], item.target_name, side.exists,
                               _metadata(stored, item),
                               _stored_documents(stored, item.source.database,
                                                 item.source.name))
        else:
            size = _write_collection(client, stored, side, actions, new_ids, stored_keys,
                                     references.get(side.item.target, {}),
                                     renamed.get(side.item.source.full_name, {}))
        result.items += 1
        result.bytes += size
    return result


def _plan_keys(sides: Sequence[_Side], mode: str) -> list[DocKey]:
    """The keys in the order `plan_items` lists them: the snapshot's, then (mode overwrite)
    the target's extras."""
    snapshot = [key for side in sides for key in side.snapshot]
    if mode != "overwrite":
        return snapshot
    known = set(snapshot)
    return snapshot + [key for side in sides for key in side.target if key not in known]


def _count_by_group(groups: Iterator[str] | Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for group in groups:
        counts[group] = counts.get(group, 0) + 1
    return counts


def _written_counts(plan: RestorePlan, sides: Sequence[_Side]) -> dict[str, int]:
    """Target collection -> documents written (created, overwritten or renamed)."""
    counts = {side.item.target: 0 for side in sides}
    for item in plan.items:
        if item.action in ("create", "overwrite", "rename"):
            counts[item.group] += 1
    return counts


# --- reading both sides ----------------------------------------------------------------


def _read_sides(client: MongoClient[Any], stored: StoredItems, item: CollectionRestore,
                stored_keys: dict[str, set[Any]], target_ids: dict[str, list[Any]],
                mode: str, remap: bool) -> _Side:
    database = client[item.target_database]
    exists = bool(database.list_collection_names(filter={"name": item.target_name}))
    side = _Side(item, exists)
    for raw in _selected(stored, item, stored_keys):
        key, _id = _key(item, raw)
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
        key, _id = _key(item, raw)
        if key in side.target:
            return _whole_side(client, stored, item, exists, mode,
                               repeated_id("target", id_text(_id)))
        side.target[key] = fingerprint(raw)
        side.ids.setdefault(key, _id)
        side.texts.setdefault(key, id_text(_id))
    return side


def _whole_side(client: MongoClient[Any], stored: StoredItems, item: CollectionRestore,
                exists: bool, mode: str, why: str) -> _Side:
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
    documents = _stored_documents(stored, item.source.database, item.source.name)
    return _Side(item, exists, whole=read_whole(why, documents, collection))


def _key(item: CollectionRestore, raw: bytes) -> tuple[DocKey, Any]:
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


def _stored_documents(stored: StoredItems, database: str, name: str) -> Iterator[bytes]:
    path = item_path(database, name, BSON_SUFFIX)
    if path not in stored.paths():
        return
    with stored.open(path) as stream:
        yield from iter_raw_documents(stream, path)


def _selected(stored: StoredItems, item: CollectionRestore,
              entity_keys: dict[str, set[Any]]) -> Iterator[bytes]:
    selection = item.selection
    wanted_ids = {value_key(v) for v in id_candidates(selection.ids)}
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
            keep = value_key(document["_id"]) in entity_keys.get(selection.entity or "", set())
        if keep:
            yield raw


def _stored_entity_ids(stored: StoredItems, plan: CollectionPlan) -> dict[str, list[Any]]:
    """Entity name -> the `_id`s an entity restore takes, found in the snapshot."""
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

    return entity_closure(plan.entities, plan.entity_selection, find_ids)


def _target_entity_ids(client: MongoClient[Any], plan: CollectionPlan,
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


# --- new ids and references ------------------------------------------------------------


def _new_ids(client: MongoClient[Any], sides: Sequence[_Side], actions: Mapping[DocKey, Action],
             remap: bool) -> dict[DocKey, Any]:
    """Document -> its new `_id`: every restored document with `remap_ids`, else the
    documents restored beside a conflicting one (`rename`)."""
    out: dict[DocKey, Any] = {}
    for side in sides:
        wanted = [key for key in side.snapshot
                  if actions[key] == "rename" or (remap and actions[key] == "create")]
        if not wanted:
            continue
        taken: list[Any] = list(side.ids.values())
        if side.exists and any(isinstance(side.ids[k], int) for k in wanted):
            database = client[side.item.target_database]
            taken += [d["_id"] for d in database[side.item.target_name].find({}, {"_id": 1})]
        allocator = IdAllocator(taken)
        for key in wanted:
            out[key] = allocator.new_id(side.ids[key])
    return out


def _id_map_report(sides: Sequence[_Side], new_ids: Mapping[DocKey, Any]
                   ) -> dict[str, dict[str, str]]:
    report: dict[str, dict[str, str]] = {}
    for side in sides:
        mapped = {side.texts[k]: id_text(new_ids[k]) for k in side.snapshot if k in new_ids}
        if mapped:
            report[side.item.target] = mapped
    return report


def _references(plan: CollectionPlan, new_ids: Mapping[DocKey, Any]
                ) -> dict[str, dict[str, dict[tuple[str, Any], Any]]]:
    """Target collection -> {key field -> the parent collection's old -> new ids}, for every
    declared parent/child pair the restore writes both sides of."""
    by_stored = {item.source.full_name: item for item in plan.collections}
    per_collection: dict[str, dict[tuple[str, Any], Any]] = {}
    for key, new in new_ids.items():
        per_collection.setdefault(key[0], {})[key[1]] = new
    out: dict[str, dict[str, dict[tuple[str, Any], Any]]] = {}
    by_name = {entity.name: entity for entity in plan.entities}
    for entity in plan.entities:
        parent = by_name.get(entity.parent or "")
        child_item = by_stored.get(entity.collection)
        parent_item = by_stored.get(parent.collection) if parent else None
        if entity.key is None or child_item is None or parent_item is None:
            continue
        mapping = per_collection.get(parent_item.target, {})
        if mapping:
            out.setdefault(child_item.target, {})[entity.key] = mapping
    return out


# --- writing ---------------------------------------------------------------------------


def _metadata(stored: StoredItems, item: CollectionRestore) -> dict[str, Any]:
    path = item_path(item.source.database, item.source.name, METADATA_SUFFIX)
    with stored.open(path) as stream:
        loaded: dict[str, Any] = load_json(stream.read())
    return loaded


def _write_collection(client: MongoClient[Any], stored: StoredItems, side: _Side,
                      actions: Mapping[DocKey, Action], new_ids: Mapping[DocKey, Any],
                      entity_keys: dict[str, set[Any]],
                      references: Mapping[str, Mapping[tuple[str, Any], Any]],
                      renamed: Mapping[str, str]) -> int:
    """Carries out the plan for one collection; returns the bytes written. A new copy's
    documents take the `renamed` fields' values (--rename)."""
    from bson.raw_bson import RawBSONDocument
    from pymongo import InsertOne, ReplaceOne

    item = side.item
    metadata = _metadata(stored, item)
    database = client[item.target_database]
    if not side.exists:
        database.command({"create": item.target_name, **metadata.get("options", {})})
    if metadata.get("type") == "view" or not item.source.has_documents:
        return 0
    collection = database.get_collection(item.target_name, codec_options=RAW_OPTIONS)
    doomed = [side.ids[key] for key in side.target if actions.get(key) == "delete"]
    for start in range(0, len(doomed), _BATCH_DOCUMENTS):
        # Deletes first: they free unique index values the restored documents may take.
        collection.delete_many({"_id": {"$in": doomed[start:start + _BATCH_DOCUMENTS]}})
    written = 0
    operations: list[Any] = []
    batch_bytes = 0
    for raw in _selected(stored, item, entity_keys):
        key, _id = _key(item, raw)
        action = actions[key]
        if action in ("skip", "delete", "conflict"):
            continue
        if key in new_ids:
            raw = rewrite_document(raw, new_ids[key], references, renamed)
        elif references:
            raw = rewrite_document(raw, None, references)
        document = RawBSONDocument(raw, RAW_OPTIONS)
        operations.append(ReplaceOne({"_id": _id}, document) if action == "overwrite"
                          else InsertOne(document))
        written += len(raw)
        batch_bytes += len(raw)
        if len(operations) >= _BATCH_DOCUMENTS or batch_bytes >= _BATCH_BYTES:
            collection.bulk_write(operations, ordered=True, bypass_document_validation=True)
            operations, batch_bytes = [], 0
    if operations:
        collection.bulk_write(operations, ordered=True, bypass_document_validation=True)
    if not side.exists:
        create_indexes(database, item.target_name, metadata.get("indexes", []))
    return written
