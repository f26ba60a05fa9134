"""An application's entities (project -> session -> message) over its collections.

Pure: the tree a source declares, which documents a selection of one entity brings with it
(a project's sessions and their messages), and the tree a snapshot's meta shows with its
counts. Finding documents is passed in as a function, so the same closure runs against a
live server (selective backup) and against a snapshot's stored items (selective restore).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vault.errors import UsageError
from vault.planning.restore_request import check_copy_mode  # the rule lives with the request

__all__ = [
    "Entity",
    "EntityNode",
    "EntitySelection",
    "check_copy_mode",
    "entities_from_meta",
    "entity_closure",
    "entity_selection_of",
    "entity_tree",
    "field_values",
    "id_candidates",
    "subtree",
]

_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
_INTEGER = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True)
class Entity:
    """One declared entity; `collection` is resolved to "db.coll" (a table for SQL)."""

    name: str
    collection: str
    parent: str | None = None  # the entity above it (None: a top entity)
    key: str | None = None  # the field of this entity's documents holding the parent's _id
    date_field: str | None = None  # its records' date: `vault ls` shows the first and last


@dataclass(frozen=True)
class EntitySelection:
    """Some documents of one entity, by `_id`, and everything below them.
    As a request: {"entity": "project", "ids": ["65a1...", 42]}."""

    entity: str
    ids: tuple[Any, ...]


@dataclass
class EntityNode:
    """A level of the restore tree: an entity with what the snapshot holds of it."""

    name: str
    collection: str
    documents: int
    first: str | None = None  # ISO dates of the date field's range, when declared
    last: str | None = None
    children: list[EntityNode] = field(default_factory=list)


def entity_selection_of(query: Mapping[str, Any], database: str) -> EntitySelection:
    """The selection a SQL restore's `query` names (`database`: "SQLite", "PostgreSQL",
    for the message); anything else is a usage error."""
    if set(query) != {"entity", "ids"} or not isinstance(query.get("entity"), str):
        raise UsageError(f"a {database} restore selects an entity with --query "
                         "'{\"entity\": NAME, \"ids\": [...]}' (or whole tables with --only), "
                         f"not {sorted(query)}")
    ids = query["ids"]
    if not isinstance(ids, list) or not ids or not all(
            isinstance(i, (int, str)) and not isinstance(i, bool) for i in ids):
        raise UsageError("the entity query's \"ids\" must be a non-empty list of primary "
                         "keys (numbers or strings)")
    return EntitySelection(query["entity"], tuple(ids))


def field_values(pairs: Iterable[str]) -> dict[str, str]:
    """`FIELD=VALUE` pairs (`--rename`, the TUI's rename field) as a dict; a malformed or
    repeated one is a usage error."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        name = name.strip()
        if not equals or not name:
            raise UsageError(f"rename {pair!r}: give FIELD=VALUE, e.g. name=Website (copy)")
        if name in found:
            raise UsageError(f"rename names field {name!r} twice")
        found[name] = value
    return found


def renamed_fields(rename: Sequence[tuple[str, str]], remap_ids: bool,
                   selection: EntitySelection | None, entities: Sequence[Entity]
                   ) -> tuple[Entity, dict[str, str]] | None:
    """The entity whose copied rows `--rename FIELD=VALUE` changes (the one the query
    selects) and the fields to set; None without --rename. A rename only names a new
    copy: without --new-ids and an entity query it is a usage error."""
    if not rename:
        return None
    if not remap_ids or selection is None:
        raise UsageError("--rename FIELD=VALUE names a new copy of an entity: give it with "
                         "--new-ids and --query '{\"entity\": NAME, \"ids\": [...]}'")
    fields = dict(rename)
    if len(fields) != len(rename):
        raise UsageError("--rename names the same field twice")
    by_name = {entity.name: entity for entity in entities}
    if selection.entity not in by_name:
        raise UsageError(f"unknown entity {selection.entity!r}")
    return by_name[selection.entity], fields


def check_renamed_columns(table: str, fields: Mapping[str, str], columns: Sequence[str],
                          key: Sequence[str]) -> None:
    """A SQL table's copy can take `--rename` values only in columns it has, and never
    in its key (the copy's keys are new ones)."""
    for name in fields:
        if name in key:
            raise UsageError(f"--rename cannot set {name!r}, the key of table {table}: "
                             "the copy's keys are new ones")
        if name not in columns:
            raise UsageError(f"--rename names {name!r}, which is not a column of table "
                             f"{table} (its columns: {', '.join(columns)})")


def entities_from_meta(meta: Mapping[str, Any]) -> tuple[Entity, ...]:
    """The hierarchy a snapshot was taken with (its meta records it), for a source that is
    not configured with one (no longer, or an ad-hoc URL)."""
    return tuple(Entity(str(r["name"]), str(r["collection"]), r.get("parent"), r.get("key"),
                        r.get("date_field")) for r in meta.get("entities") or [])


def ordered(entities: Sequence[Entity]) -> list[Entity]:
    """Parents before their children (config validation guarantees a tree)."""
    placed: list[Entity] = []
    names: set[str | None] = {None}
    pending = list(entities)
    while pending:
        ready = [entity for entity in pending if entity.parent in names]
        if not ready:
            raise ValueError("entities do not form a tree")
        placed += ready
        names |= {entity.name for entity in ready}
        pending = [entity for entity in pending if entity not in ready]
    return placed


def subtree(entities: Sequence[Entity], name: str) -> list[Entity]:
    """`name` and every entity below it, parents first."""
    by_name = {entity.name: entity for entity in entities}
    if name not in by_name:
        known = ", ".join(sorted(by_name)) or "none declared"
        raise KeyError(f"no entity is named {name!r} (known: {known})")
    chosen = {name}
    for entity in ordered(entities):
        if entity.parent in chosen:
            chosen.add(entity.name)
    return [entity for entity in ordered(entities) if entity.name in chosen]


def id_candidates(ids: Iterable[Any]) -> list[Any]:
    """The ids as given, plus the ObjectId a 24-hex-digit string spells and the integer a
    string of digits spells (a command line cannot tell them apart; a value matching two
    documents that way is vanishingly unlikely)."""
    from bson import ObjectId

    out: list[Any] = []
    for value in ids:
        out.append(value)
        if isinstance(value, str) and _OBJECT_ID.fullmatch(value):
            out.append(ObjectId(value))
        elif isinstance(value, str) and _INTEGER.fullmatch(value):
            out.append(int(value))
    return out


FindIds = Callable[[Entity, str, list[Any]], list[Any]]


def entity_closure(entities: Sequence[Entity], selection: EntitySelection,
                   find_ids: FindIds) -> dict[str, list[Any]]:
    """Entity name -> the `_id`s selected: the given ones, then level by level the documents
    whose `key` holds a selected parent's `_id`. `find_ids(entity, field, values)` returns
    the `_id`s of the entity's documents whose `field` is one of `values`."""
    chosen = subtree(entities, selection.entity)
    selected: dict[str, list[Any]] = {}
    for entity in chosen:
        if entity.name == selection.entity:
            selected[entity.name] = find_ids(entity, "_id", id_candidates(selection.ids))
        else:
            assert entity.parent is not None and entity.key is not None
            selected[entity.name] = find_ids(entity, entity.key, selected[entity.parent])
    return selected


def entity_tree(meta: Mapping[str, Any]) -> list[EntityNode]:
    """A snapshot's meta (as a MongoDB capture writes it) as the tree of its entities:
    Project -> Session -> Message, each with its document count and date range."""
    records = meta.get("entities") or []
    nodes = {
        record["name"]: EntityNode(
            name=record["name"],
            collection=record["collection"],
            documents=int(record.get("documents") or 0),
            first=record.get("first"),
            last=record.get("last"),
        )
        for record in records
    }
    roots: list[EntityNode] = []
    for record in records:
        parent = nodes.get(record.get("parent") or "")
        (parent.children if parent is not None else roots).append(nodes[record["name"]])
    return roots
