"""Secrets inside MongoDB documents: the settings source's secret globs applied to named
collections, in the stored copy only (the application's database is never written).

A collection is named with `[[sources.secret_collections]]`. With `key_field` and
`value_field` it is a key/value collection: the value of every document whose key (a
string) matches a glob is a secret. Without them, every field whose name or dotted path
(`smtp.password`, `servers.0.token`), at any depth, matches a glob holds one; the whole
value under it (a string, a number, a document, an array) is one secret. `_id` never is.
A secret (never a null) is replaced, in the document's raw BSON, by a string:

- `secrets = "redact"`: `vault:redacted`. A restore puts the target's live value back
  where the target still has the document (same `_id`, or the same key in a key/value
  collection) and the field; elsewhere the marker is restored;
- `secrets = "encrypt"`: `vault:sealed:<base64>`, the element's BSON type and value
  sealed with the repository's secret sealer; a restore opens it (exactly, type for type).
  One this repository's key does not open (an imported snapshot) restores as redacted.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vault.errors import UsageError
from vault.repository.crypto import DecryptionFailed
from vault.sources.base import RewrittenItems, SecretSealer, StoredItems
from vault.sources.mongodb.bson_items import decode_document, iter_raw_documents
from vault.sources.mongodb.bson_splice import (
    NULL,
    STRING,
    Element,
    elements,
    read_string,
    rewrite,
    string_value,
)
from vault.sources.mongodb.match import value_key
from vault.sources.mongodb.selection import BSON_SUFFIX, item_path
from vault.sources.settings.errors import SealerMissing
from vault.sources.settings.secrets import SecretMatcher
from vault.sources.sqlite.secrets import REDACTED_TEXT, SEALED_PREFIX

if TYPE_CHECKING:
    from pymongo import MongoClient

__all__ = ["SecretCollection", "SecretDocuments", "protector", "revealed"]


class MongoSecretCollectionMissing(UsageError):
    """secret_collections: the capture has no collection {name!r} (it has: {known})"""


@dataclass(frozen=True)
class SecretCollection:
    collection: str  # "db.coll"
    key_field: str | None = None
    value_field: str | None = None


@dataclass(frozen=True)
class SecretDocuments:
    """What a MongoDB source protects, and how."""

    collections: tuple[SecretCollection, ...]
    mode: Literal["redact", "encrypt"]
    patterns: tuple[str, ...]


class _Matcher(SecretMatcher):
    """A SecretMatcher that remembers its answers: documents of a collection repeat the
    same field paths, and the globs are the cost of a capture of a secret collection."""

    def __init__(self, patterns: Sequence[str]) -> None:
        super().__init__(patterns)
        self._seen: dict[tuple[str, str], bool] = {}

    def is_secret(self, key: object, path: str) -> bool:
        found = self._seen.get((str(key), path))
        if found is None:
            if len(self._seen) > 100_000:  # array indexes in paths: keep it bounded
                self._seen.clear()
            found = self._seen[(str(key), path)] = super().is_secret(key, path)
        return found


# --- capture ---------------------------------------------------------------------------------


def plan_collections(secrets: SecretDocuments, captured: Sequence[str],
                     only_present: bool) -> list[dict[str, Any]]:
    """The meta entry of each named collection the capture holds. A named collection the
    capture lacks is an error (a misspelt name would leave the real one unprotected),
    unless `only_present`: a selective entity backup (only the entity's collections) or
    an undo copy of a restore's target (which may lack it)."""
    plans = []
    for spec in secrets.collections:
        if spec.collection not in captured:
            if only_present:
                continue
            raise MongoSecretCollectionMissing(name=spec.collection,
                                               known=", ".join(captured[:20]) or "none")
        plans.append({"collection": spec.collection, "key_field": spec.key_field,
                      "value_field": spec.value_field, "patterns": list(secrets.patterns),
                      "fields": 0})
    return plans


def protector(plan: dict[str, Any], mode: str, sealer: SecretSealer | None,
              name: str) -> Callable[[bytes], bytes]:
    """A function from a document's raw BSON to the same with its secrets replaced; it
    counts them in `plan["fields"]`."""
    if mode == "encrypt" and sealer is None:
        raise SealerMissing('secrets = "encrypt" needs the repository\'s secret sealer, and '
                            "the capture has none", name=name)
    matcher = _Matcher(plan["patterns"])

    def hidden(kind: int, value: bytes) -> Element:
        plan["fields"] += 1
        if mode == "redact" or sealer is None:
            return STRING, string_value(REDACTED_TEXT)
        sealed = base64.b64encode(sealer.seal(bytes([kind]) + value)).decode()
        return STRING, string_value(SEALED_PREFIX + sealed)

    def protect(raw: bytes) -> bytes:
        secret = _secret_test(raw, plan, matcher)
        if secret is None:
            return raw
        changed = rewrite(raw, lambda kind, field, dotted, value: hidden(kind, value)
                          if kind != NULL and secret(field, dotted) else None,
                          descend=plan["key_field"] is None)
        return raw if changed is None else changed

    return protect


def _secret_test(raw: bytes, plan: Mapping[str, Any], matcher: SecretMatcher
                 ) -> Callable[[str, str], bool] | None:
    """Which fields of this document are secrets: by name/path, or (a key/value
    collection) its value field when its key matches; None when it holds none."""
    if plan["key_field"] is None:
        return lambda field, dotted: dotted != "_id" and matcher.is_secret(field, dotted)
    key = _key_of(raw, plan["key_field"])
    if key is None or not matcher.is_secret(key, key):
        return None
    return lambda field, dotted: dotted == plan["value_field"]


def _key_of(raw: bytes, key_field: str) -> str | None:
    for kind, field, value, value_end in elements(raw):
        if field == key_field and kind == STRING:
            return read_string(raw[value:value_end])
    return None


# --- restore ---------------------------------------------------------------------------------

#: a document's identity (its `_id`'s value_key, or its key) -> dotted path -> live element
LiveFields = dict[Any, dict[str, Element]]


def _identity(raw: bytes, plan: Mapping[str, Any]) -> Any:
    if plan["key_field"] is not None:
        return _key_of(raw, plan["key_field"])
    for kind, field, value, value_end in elements(raw):
        if field == "_id":  # decoded alone: the rest of the document is not needed
            alone = bytes([kind]) + b"_id\x00" + raw[value:value_end]
            document = decode_document((len(alone) + 5).to_bytes(4, "little") + alone
                                       + b"\x00")
            return value_key(document["_id"])
    return None


def live_fields(client: MongoClient[Any], targets: Mapping[str, str],
                plans: Sequence[dict[str, Any]]) -> dict[str, LiveFields]:
    """The target's current secret fields of every protected collection the restore
    writes (`targets`: stored "db.coll" -> target "db.coll"), read before it writes."""
    from vault.sources.mongodb.bson_items import RAW_OPTIONS

    found: dict[str, LiveFields] = {}
    for plan in plans:
        target = targets.get(plan["collection"])
        if target is None:
            continue
        database, _, name = target.partition(".")
        collection = client[database].get_collection(name, codec_options=RAW_OPTIONS)
        matcher = _Matcher(plan["patterns"])
        fields: LiveFields = {}
        for document in collection.find({}):
            raw: bytes = document.raw
            fields[_identity(raw, plan)] = _secret_elements(raw, plan, matcher)
        found[plan["collection"]] = fields
    return found


def _secret_elements(raw: bytes, plan: Mapping[str, Any], matcher: SecretMatcher
                     ) -> dict[str, Element]:
    """dotted path -> element of every field of `raw` that may hold a secret."""
    kept: dict[str, Element] = {}

    def keep(kind: int, field: str, dotted: str, value: bytes) -> None:
        if _may_hide(plan, matcher, field, dotted):
            kept[dotted] = (kind, value)

    rewrite(raw, keep, descend=plan["key_field"] is None)
    return kept


def revealer(plan: dict[str, Any], live: LiveFields | None, sealer: SecretSealer | None,
             name: str) -> Callable[[bytes], bytes]:
    """A function from a stored document to the same with its secrets put back: sealed
    ones opened, redacted ones the target's live value where it has one."""
    matcher = _Matcher(plan["patterns"])

    def reveal(raw: bytes) -> bytes:
        known: dict[str, Element] | None = None

        def live_value(dotted: str) -> Element | None:
            nonlocal known
            if known is None:  # looked up once, and only for a document with a marker
                known = live.get(_identity(raw, plan), {}) if live else {}
            return known.get(dotted)

        def visit(kind: int, field: str, dotted: str, value: bytes) -> Element | None:
            if kind != STRING or not _may_hide(plan, matcher, field, dotted):
                return None
            text = read_string(value)
            opened = _opened(text, sealer, name) if text.startswith(SEALED_PREFIX) else None
            if opened is None and (text == REDACTED_TEXT or text.startswith(SEALED_PREFIX)):
                opened = live_value(dotted)
            return opened

        changed = rewrite(raw, visit, descend=plan["key_field"] is None)
        return raw if changed is None else changed

    return reveal


def _may_hide(plan: Mapping[str, Any], matcher: SecretMatcher, field: str,
              dotted: str) -> bool:
    if plan["key_field"] is not None:
        return bool(dotted == plan["value_field"])
    return dotted != "_id" and matcher.is_secret(field, dotted)


def _opened(text: str, sealer: SecretSealer | None, name: str) -> Element | None:
    if sealer is None:
        raise SealerMissing("the backup holds encrypted secrets and the restore was given "
                            "no secret sealer to open them", name=name)
    try:
        element = sealer.unseal(base64.b64decode(text[len(SEALED_PREFIX):], validate=True))
    except (DecryptionFailed, ValueError):
        return None  # another repository's key sealed it: restored like a redacted one
    return element[0], element[1:]


class RevealedItems(RewrittenItems):
    """A snapshot's stored items with the protected collections' documents revealed as
    they are read (a StoredItems). Sizes are the stored ones."""

    def __init__(self, stored: StoredItems, live: dict[str, LiveFields],
                 sealer: SecretSealer | None, name: str) -> None:
        super().__init__(stored)
        self._reveal: dict[str, Callable[[bytes], bytes]] = {}
        for plan in stored.meta["secret_fields"]["collections"]:
            database, _, collection = plan["collection"].partition(".")
            path = item_path(database, collection, BSON_SUFFIX)
            self._reveal[path] = revealer(plan, live.get(plan["collection"]), sealer, name)

    def rewriter(self, path: str) -> Callable[[], Iterable[bytes]] | None:
        reveal = self._reveal.get(path)
        if reveal is None:
            return None
        return lambda: self._revealed(path, reveal)

    def _revealed(self, path: str, reveal: Callable[[bytes], bytes]) -> Iterator[bytes]:
        with self._stored.open(path) as stream:
            for raw in iter_raw_documents(stream, path):
                yield reveal(raw)


@contextmanager
def revealed(stored: StoredItems, live: Callable[[list[dict[str, Any]]], dict[str, LiveFields]],
             sealer: SecretSealer | None, name: str) -> Iterator[StoredItems]:
    """`stored` as it was before its secrets were protected (as far as that can be);
    `live(plans)` reads the target's current secret fields."""
    meta = stored.meta.get("secret_fields")
    if not meta:
        yield stored
        return
    yield RevealedItems(stored, live(meta["collections"]), sealer, name)
