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
from typing import TYPE_CHECKING, Any

from vault.planning.restore_plan import Action, Mode, OnConflict, RestorePlan, plan_whole
from vault.sources.base import SourceRestoreRequest, SourceRestoreResult, StoredItems
from vault.sources.entities import (
    renamed_fields,
)
from vault.sources.mongodb.bson_items import (
    RAW_OPTIONS,
    CorruptBSON,
)
from vault.sources.mongodb.client import server_errors
from vault.sources.mongodb.match import UnsupportedQuery, value_key
from vault.sources.mongodb.plan import (
    CollectionPlan,
    DocKey,
    PlanError,
    plan_documents,
    plan_restore,
)
from vault.sources.mongodb.remap import IdAllocator, UnsupportedId, id_text, rewrite_document
from vault.sources.mongodb.selection import display_url
from vault.sources.mongodb.sides import (
    MongoRestoreRefused,
    RestoreConflicts,
    RestoreTargetNotEmpty,
    Side,
    document_key,
    metadata_of,
    read_sides,
    selected,
    stored_documents,
    stored_entity_ids,
    target_entity_ids,
)
from vault.sources.mongodb.whole import BATCH_DOCUMENTS, create_indexes, in_batches, write_whole

if TYPE_CHECKING:
    from pymongo import MongoClient

    from vault.sources.mongodb.source import MongoSource

__all__ = ["MongoRestoreRefused", "RestoreConflicts", "RestoreTargetNotEmpty", "restore"]

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
    renamed = _renamed(request, cplan)
    stored_ids = stored_entity_ids(stored, cplan)
    stored_keys = {name: {value_key(v) for v in ids} for name, ids in stored_ids.items()}
    target_ids = {} if request.remap_ids else target_entity_ids(client, cplan, stored_ids)
    sides = [read_sides(client, stored, item, stored_keys, target_ids, mode, request.remap_ids)
             for item in cplan.collections]
    keyed = [side for side in sides if side.whole is None]
    plan, actions = _plan(sides, mode, request.on_conflict)
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
                               metadata_of(stored, item),
                               stored_documents(stored, item.source.database,
                                                 item.source.name))
        else:
            size = _write_collection(client, stored, side, actions, new_ids, stored_keys,
                                     references.get(side.item.target, {}),
                                     renamed.get(side.item.source.full_name, {}))
        result.items += 1
        result.bytes += size
    return result


def _renamed(request: SourceRestoreRequest, cplan: CollectionPlan) -> dict[str, dict[str, str]]:
    """Stored collection -> the fields a new copy's top documents take (--rename)."""
    found = renamed_fields(request.rename, request.remap_ids, cplan.entity_selection,
                           cplan.entities)
    if found is not None and "_id" in found[1]:
        raise MongoRestoreRefused(detail="--rename cannot set _id: the copy's ids are new ones")
    return {found[0].collection: found[1]} if found is not None else {}


def _plan(sides: Sequence[Side], mode: Mode, on_conflict: OnConflict | None
          ) -> tuple[RestorePlan, dict[DocKey, Action]]:
    """The plan of every document (a collection read whole: of its documents as a whole)
    and each keyed document's action; a plan with conflicts is refused here."""
    keyed = [side for side in sides if side.whole is None]
    plan = plan_documents(
        {k: v for side in keyed for k, v in side.snapshot.items()},
        {k: v for side in keyed for k, v in side.target.items()},
        mode=mode, on_conflict=on_conflict,
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
    return plan, actions


def _plan_keys(sides: Sequence[Side], mode: str) -> list[DocKey]:
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


def _written_counts(plan: RestorePlan, sides: Sequence[Side]) -> dict[str, int]:
    """Target collection -> documents written (created, overwritten or renamed)."""
    counts = {side.item.target: 0 for side in sides}
    for item in plan.items:
        if item.action in ("create", "overwrite", "rename"):
            counts[item.group] += 1
    return counts


# --- new ids and references ------------------------------------------------------------


def _new_ids(client: MongoClient[Any], sides: Sequence[Side], actions: Mapping[DocKey, Action],
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


def _id_map_report(sides: Sequence[Side], new_ids: Mapping[DocKey, Any]
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


def _write_collection(client: MongoClient[Any], stored: StoredItems, side: Side,
                      actions: Mapping[DocKey, Action], new_ids: Mapping[DocKey, Any],
                      entity_keys: dict[str, set[Any]],
                      references: Mapping[str, Mapping[tuple[str, Any], Any]],
                      renamed: Mapping[str, str]) -> int:
    """Carries out the plan for one collection; returns the bytes written. A new copy's
    documents take the `renamed` fields' values (--rename)."""
    from bson.raw_bson import RawBSONDocument
    from pymongo import InsertOne, ReplaceOne

    item = side.item
    metadata = metadata_of(stored, item)
    database = client[item.target_database]
    if not side.exists:
        database.command({"create": item.target_name, **metadata.get("options", {})})
    if metadata.get("type") == "view" or not item.source.has_documents:
        return 0
    collection = database.get_collection(item.target_name, codec_options=RAW_OPTIONS)
    doomed = [side.ids[key] for key in side.target if actions.get(key) == "delete"]
    for start in range(0, len(doomed), BATCH_DOCUMENTS):
        # Deletes first: they free unique index values the restored documents may take.
        collection.delete_many({"_id": {"$in": doomed[start:start + BATCH_DOCUMENTS]}})
    written = 0

    def operations() -> Iterator[tuple[Any, int]]:
        for raw in selected(stored, item, entity_keys):
            key, _id = document_key(item, raw)
            action = actions[key]
            if action in ("skip", "delete", "conflict"):
                continue
            if key in new_ids:
                raw = rewrite_document(raw, new_ids[key], references, renamed)
            elif references:
                raw = rewrite_document(raw, None, references)
            document = RawBSONDocument(raw, RAW_OPTIONS)
            yield (ReplaceOne({"_id": _id}, document) if action == "overwrite"
                   else InsertOne(document)), len(raw)

    for batch in in_batches(operations()):
        collection.bulk_write([operation for operation, _ in batch], ordered=True,
                              bypass_document_validation=True)
        written += sum(size for _, size in batch)
    if not side.exists:
        create_indexes(database, item.target_name, metadata.get("indexes", []))
    return written
