"""Which stored collections and documents a MongoDB restore writes, and how: pure.

Two levels. `plan_restore` turns a snapshot's item paths and a `SourceRestoreRequest` into
a `CollectionPlan` (which stored collections go where, and which of their documents) without
touching a server. `plan_documents` then decides per document, by `_id`, what happens
(create / overwrite / skip / rename / delete / conflict), with `vault.planning.restore_plan`, from
both sides' fingerprints (sha256 of the raw BSON bytes); `vault.sources.mongodb.restore`
reads those fingerprints and carries out exactly that plan.

`request.query` shapes (JSON; ids and values in MongoDB extended JSON):
    {"ids": [...]}                          these `_id`s, in every selected collection
    {"filter": {...}}                       documents matching a MongoDB query
    {"entity": "project", "ids": [...]}     these projects, their sessions and messages

An id that is a 24-hex-digit string also matches the ObjectId it spells.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from vault.planning.restore_plan import Mode, OnConflict, RestorePlan, plan_items
from vault.sources.entities import Entity, EntitySelection, subtree
from vault.sources.mongodb.selection import (
    BSON_SUFFIX,
    METADATA_SUFFIX,
    MongoFilters,
    item_path,
    name_matches,
    parse_item_path,
    url_database,
)

__all__ = ["CollectionPlan", "CollectionRestore", "DocKey", "DocumentSelection",
           "StoredCollection", "fingerprint", "plan_documents", "plan_restore",
           "stored_collections", "target_collections", "target_filters"]

#: a document in the plan: (target collection "db.coll", `value_key` of its `_id`)
DocKey = tuple[str, tuple[str, Any]]


class PlanError(ValueError):
    """The request cannot be planned (unknown collection, bad query shape, clash)."""


@dataclass(frozen=True)
class StoredCollection:
    database: str
    name: str
    has_documents: bool  # a view has metadata only

    @property
    def full_name(self) -> str:
        return f"{self.database}.{self.name}"


@dataclass(frozen=True)
class DocumentSelection:
    """Which of a collection's stored documents to restore: all, some `_id`s, the ones
    matching a filter, or the ones an entity selection reaches (computed on execution,
    as it needs the parents' documents)."""

    kind: Literal["all", "ids", "filter", "entity"] = "all"
    ids: tuple[Any, ...] = ()
    filter: Mapping[str, Any] | None = None
    entity: str | None = None  # the entity whose selected ids this collection takes


@dataclass(frozen=True)
class CollectionRestore:
    """A stored collection, where it goes, and which of its documents the restore is about
    (in the snapshot and, the same selection, in the target)."""

    source: StoredCollection
    target_database: str
    target_name: str
    selection: DocumentSelection

    @property
    def target(self) -> str:
        return f"{self.target_database}.{self.target_name}"


@dataclass(frozen=True)
class CollectionPlan:
    target_url: str | None  # None: the source's own server
    collections: tuple[CollectionRestore, ...]
    entity_selection: EntitySelection | None = None
    entities: tuple[Entity, ...] = ()


def stored_collections(paths: Sequence[str]) -> list[StoredCollection]:
    """The collections a snapshot's items hold, sorted by database and name."""
    found: dict[tuple[str, str], bool] = {}
    for path in paths:
        parsed = parse_item_path(path)
        if parsed is not None:
            database, name, suffix = parsed
            found[(database, name)] = found.get((database, name), False) or suffix == BSON_SUFFIX
    return [StoredCollection(d, n, docs) for (d, n), docs in sorted(found.items())]


def plan_restore(paths: Sequence[str], *, target: str | None, only: Sequence[str],
                 query: Mapping[str, Any] | None,
                 entities: Sequence[Entity] = ()) -> CollectionPlan:
    stored = [c for c in stored_collections(paths) if _has_metadata(paths, c)]
    selection, entity_selection = _selection_of(query)
    chosen = [c for c in stored if not only or name_matches(only, c.database, c.name)]
    if only and not chosen:
        raise PlanError(f"no stored collection matches {', '.join(only)}")
    per_collection: dict[str, DocumentSelection] = {}
    if entity_selection is not None:
        try:
            reached = subtree(entities, entity_selection.entity)
        except KeyError as exc:
            raise PlanError(str(exc.args[0])) from None
        per_collection = {e.collection: DocumentSelection("entity", entity=e.name)
                          for e in reached}
        chosen = [c for c in chosen if c.full_name in per_collection]
    target_url, target_database = _target(target)
    planned = [
        CollectionRestore(c, target_database or c.database, c.name,
                          per_collection.get(c.full_name, selection))
        for c in chosen
    ]
    _refuse_clashes(planned)
    return CollectionPlan(target_url, tuple(planned), entity_selection, tuple(entities))


def _has_metadata(paths: Sequence[str], collection: StoredCollection) -> bool:
    return item_path(collection.database, collection.name, METADATA_SUFFIX) in paths


def _selection_of(query: Mapping[str, Any] | None
                  ) -> tuple[DocumentSelection, EntitySelection | None]:
    if not query:
        return DocumentSelection(), None
    from bson import json_util

    # Extended JSON ({"$oid": ...}) from the command line becomes BSON values here.
    decoded = json_util.loads(json_util.dumps(dict(query)))
    keys = set(decoded)
    if keys == {"entity", "ids"}:
        if not isinstance(decoded["entity"], str) or not isinstance(decoded["ids"], list):
            raise PlanError('an entity selection is {"entity": "<name>", "ids": [...]}')
        return DocumentSelection(), EntitySelection(decoded["entity"], tuple(decoded["ids"]))
    if keys == {"ids"} and isinstance(decoded["ids"], list):
        return DocumentSelection("ids", ids=tuple(decoded["ids"])), None
    if keys == {"filter"} and isinstance(decoded["filter"], Mapping):
        return DocumentSelection("filter", filter=decoded["filter"]), None
    raise PlanError('a restore query is {"ids": [...]}, {"filter": {...}} or '
                    '{"entity": "<name>", "ids": [...]}')


def _target(target: str | None) -> tuple[str | None, str | None]:
    """(server URL or None for the source's own, database or None for the stored one)."""
    if target is None:
        return None, None
    if "://" in target:
        return target, url_database(target)
    if not target or any(char in target for char in '/\\. "$\x00'):
        raise PlanError(f"{target!r} is not a database name or a mongodb:// URL")
    return None, target


def _refuse_clashes(planned: Sequence[CollectionRestore]) -> None:
    seen: dict[str, str] = {}
    for item in planned:
        other = seen.setdefault(item.target, item.source.full_name)
        if other != item.source.full_name:
            raise PlanError(f"{other} and {item.source.full_name} would both be restored into "
                            f"{item.target}; restore them one at a time")


def target_collections(plan: CollectionPlan) -> list[str]:
    """Every "db.coll" the plan may write (what a pre-restore snapshot must capture)."""
    return sorted({item.target for item in plan.collections})


def target_filters(paths: Sequence[str] | None, *, target: str | None, only: Sequence[str],
                   query: Mapping[str, Any] | None, entities: Sequence[Entity],
                   filters: MongoFilters) -> MongoFilters:
    """The filters of a source that captures, whole, every target collection a restore may
    write. With the snapshot's item `paths`: exactly the restore's own collections. Without:
    the entity's collections, or `only`, or the source's own selection, in the target
    database (a superset at worst, which is harmless for a snapshot taken to undo)."""
    if paths is not None:
        names = target_collections(plan_restore(paths, target=target, only=only, query=query,
                                                entities=entities))
        if not names:
            raise PlanError("the restore selects no collection")
        return MongoFilters(databases=tuple(sorted({n.partition(".")[0] for n in names})),
                            collections=tuple(glob.escape(n) for n in names))
    _, target_database = _target(target)
    _, entity_selection = _selection_of(query)

    def moved(pattern: str) -> str:
        _, dot, name = pattern.partition(".")
        return f"{target_database}.{name}" if dot and target_database else pattern

    databases = (target_database,) if target_database else tuple(filters.databases)
    if entity_selection is not None:
        try:
            reached = subtree(entities, entity_selection.entity)
        except KeyError as exc:
            raise PlanError(str(exc.args[0])) from None
        chosen = [moved(glob.escape(e.collection)) for e in reached]
        return MongoFilters(databases=tuple({c.partition(".")[0] for c in chosen}),
                            collections=tuple(chosen))
    if only:
        return MongoFilters(databases=databases, collections=tuple(moved(p) for p in only))
    if target_database:
        return MongoFilters(databases=databases)
    return MongoFilters(databases=databases, collections=tuple(filters.collections),
                        exclude_collections=tuple(filters.exclude_collections))


def fingerprint(raw: bytes) -> str:
    """Equal fingerprints mean byte-equal documents (so equal in value and type)."""
    return hashlib.sha256(raw).hexdigest()


def plan_documents(snapshot: Mapping[DocKey, str], target: Mapping[DocKey, str], *,
                   mode: Mode, on_conflict: OnConflict | None, texts: Mapping[DocKey, str],
                   sizes: Mapping[DocKey, int]) -> RestorePlan:
    """The per-document plan: `snapshot` and `target` map each document within the
    selection to its fingerprint; `texts` name the `_id`s (extended JSON) for the report."""
    def text_of(key: Hashable) -> str:
        return texts[key]  # type: ignore[index]

    def size_of(key: Hashable) -> int:
        return sizes.get(key, 0)  # type: ignore[call-overload,no-any-return]

    return plan_items(cast(Mapping[Hashable, Hashable], snapshot),
                      cast(Mapping[Hashable, Hashable], target), mode=mode,
                      on_conflict=on_conflict, group_of=lambda key: str(key[0]),  # type: ignore[index]
                      size_of=size_of, key_text=text_of)
