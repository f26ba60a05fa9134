"""New ids for restored documents, and references rewritten to follow them: pure.

Used when a restore keeps both versions of a document: an entity restored as a new copy
(`remap_ids`: the project, its sessions and messages all get new ids, and each session's
`project_id` and each message's `session_id` point at the copies), or a conflicting document
restored with `--on-conflict rename`. A new id has the type of the old one: an ObjectId gets
a fresh ObjectId, an integer the next integer above every id either side holds, a string a
fresh ObjectId's hex text, a UUID (Binary subtype 3 or 4) a random UUID.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import bson
from bson import Binary, Int64, ObjectId, json_util

from vault.sources.mongodb.bson_items import DECODE_OPTIONS
from vault.sources.mongodb.match import value_key

__all__ = ["IdAllocator", "UnsupportedId", "id_text", "rewrite_document"]

_UUID_SUBTYPES = (3, 4)


class UnsupportedId(ValueError):
    """An `_id` whose type has no "new id of the same type" (a document, an array, ...)."""


def id_text(value: Any) -> str:
    """An id as relaxed extended JSON: `{"$oid": "65a1..."}`, `42`, `"u1"` (for reports)."""
    return json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS)


class IdAllocator:
    """Hands out new ids for one collection. `taken` are the ids the snapshot and the target
    hold there: integers continue above the largest of them, so a new id never collides."""

    def __init__(self, taken: Iterable[Any] = ()) -> None:
        numbers = [v for v in taken if isinstance(v, int) and not isinstance(v, bool)]
        self._next_int = max(numbers, default=0) + 1

    def new_id(self, old: Any) -> Any:
        if isinstance(old, ObjectId):
            return ObjectId()
        if isinstance(old, Int64):
            return Int64(self._take_int())
        if isinstance(old, int) and not isinstance(old, bool):
            return self._take_int()
        if isinstance(old, str):
            return str(ObjectId())
        if isinstance(old, Binary) and old.subtype in _UUID_SUBTYPES:
            return Binary(uuid.uuid4().bytes, old.subtype)
        raise UnsupportedId(f"cannot make a new _id like {id_text(old)} "
                            f"({type(old).__name__}); restore it without new ids")

    def _take_int(self) -> int:
        value = self._next_int
        self._next_int += 1
        return value


IdMap = Mapping[tuple[str, Any], Any]  # value_key(old id) -> new id


def rewrite_document(raw: bytes, new_id: Any | None,
                     references: Mapping[str, IdMap],
                     renamed: Mapping[str, str] | None = None) -> bytes:
    """`raw` with its `_id` replaced by `new_id` (None: kept) and every top-level or dotted
    field in `references` (field -> old->new map of the parent's ids) rewritten where it
    holds a remapped id (or an array of them), and each top-level field of `renamed` set
    to its value (a copy's new name). Everything else, key order and types included, is
    encoded back exactly as it was."""
    document = bson.decode(raw, DECODE_OPTIONS)
    if new_id is not None:
        document["_id"] = new_id
    for field, value in (renamed or {}).items():
        document[field] = value
    for field, mapping in references.items():
        _rewrite_path(document, field.split("."), mapping)
    return bson.encode(document, codec_options=DECODE_OPTIONS)


def _rewrite_path(value: Any, path: list[str], mapping: IdMap) -> None:
    if isinstance(value, list):
        for element in value:
            _rewrite_path(element, path, mapping)
        return
    if not isinstance(value, dict) or path[0] not in value:
        return
    head, rest = path[0], path[1:]
    if rest:
        _rewrite_path(value[head], rest, mapping)
        return
    current = value[head]
    if isinstance(current, list):
        value[head] = [_mapped(item, mapping) for item in current]
    else:
        value[head] = _mapped(current, mapping)


def _mapped(value: Any, mapping: IdMap) -> Any:
    try:
        return mapping.get(value_key(value), value)
    except TypeError:
        return value  # an unhashable value is not an id
