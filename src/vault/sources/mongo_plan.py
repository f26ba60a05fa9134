"""Which stored collections and documents a MongoDB restore writes, and how: pure.

`plan_restore` turns a snapshot's item paths and a `SourceRestoreRequest` into a
`RestorePlan` without touching a server; `vault.sources.mongo_restore` executes it. The
restore with per-document conflict handling builds on the same plan.

`request.query` shapes (JSON; ids and values in MongoDB extended JSON):
    {"ids": [...]}                          these `_id`s, in every selected collection
    {"filter": {...}}                       documents matching a MongoDB query
    {"entity": "project", "ids": [...]}     these projects, their sessions and messages

An id that is a 24-hex-digit string also matches the ObjectId it spells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vault.sources.entities import Entity, EntitySelection, subtree
from vault.sources.mongo_selection import (
    BSON_SUFFIX,
    METADATA_SUFFIX,
    item_path,
    name_matches,
    parse_item_path,
    url_database,
)

__all__ = ["CollectionRestore", "DocumentSelection", "RestorePlan", "StoredCollection",
           "plan_restore", "stored_collections"]

Action = Literal["recreate", "create", "insert", "merge"]


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
    """`recreate`: drop the target and restore it whole (mode replace).
    `create`: the target must be missing or empty; restored whole (mode new).
    `insert`: the target must be missing or empty; some documents (mode new).
    `merge`: stored documents replace the target's ones with the same `_id`, others stay
    (mode replace with a selection)."""

    source: StoredCollection
    target_database: str
    target_name: str
    selection: DocumentSelection
    action: Action

    @property
    def target(self) -> str:
        return f"{self.target_database}.{self.target_name}"


@dataclass(frozen=True)
class RestorePlan:
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
                 query: Mapping[str, Any] | None, mode: Literal["replace", "new"],
                 entities: Sequence[Entity] = ()) -> RestorePlan:
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
        _plan_one(c, per_collection.get(c.full_name, selection), target_database, mode)
        for c in chosen
    ]
    _refuse_clashes(planned)
    return RestorePlan(target_url, tuple(planned), entity_selection, tuple(entities))


def _has_metadata(paths: Sequence[str], collection: StoredCollection) -> bool:
    return item_path(collection.database, collection.name, METADATA_SUFFIX) in paths


def _plan_one(collection: StoredCollection, selection: DocumentSelection,
              target_database: str | None, mode: str) -> CollectionRestore:
    whole = selection.kind == "all"
    if mode == "replace":
        action: Action = "recreate" if whole else "merge"
    else:
        action = "create" if whole else "insert"
    return CollectionRestore(collection, target_database or collection.database,
                             collection.name, selection, action)


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
