"""What a MongoDB source selects, as data: databases, collections, queries, a date range.

Pure functions over names and filter documents, shared by capture (which asks the server
for the matching documents), estimate and restore (which picks stored collections). Also
the ad-hoc URL form: `mongodb://host/db?collections=a,b&since=2024-01-01` carries vault's
filters beside the driver's own options, and is split here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from vault.sources.entities import EntitySelection

__all__ = [
    "SYSTEM_DATABASES",
    "MongoFilters",
    "collection_query",
    "display_url",
    "item_path",
    "name_matches",
    "parse_item_path",
    "split_url",
]

SYSTEM_DATABASES = frozenset({"admin", "local", "config"})
_LIST_PARAMS = ("databases", "collections", "exclude_collections")
_VAULT_PARAMS = (*_LIST_PARAMS, "date_field", "since", "until", "entity", "ids")
BSON_SUFFIX = ".bson"
METADATA_SUFFIX = ".metadata.json"


@dataclass(frozen=True)
class MongoFilters:
    """Which documents a capture takes. Names are "coll" (in any selected database) or
    "db.coll", and may be globs (`logs_*`)."""

    databases: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    exclude_collections: tuple[str, ...] = ()
    queries: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    date_field: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    entity: EntitySelection | None = None

    def wants_database(self, name: str, url_database: str | None) -> bool:
        if self.databases:
            return name in self.databases
        if url_database:
            return name == url_database
        return name not in SYSTEM_DATABASES

    def wants_collection(self, database: str, name: str) -> bool:
        if name.startswith("system."):
            return False  # the server's own (views, profile, js): created with the database
        if self.collections and not name_matches(self.collections, database, name):
            return False
        return not name_matches(self.exclude_collections, database, name)

    def describe(self) -> dict[str, Any]:
        """The filters as JSON-safe values, for the snapshot's meta."""
        from bson import json_util

        out: dict[str, Any] = {
            key: list(getattr(self, key)) for key in _LIST_PARAMS if getattr(self, key)
        }
        if self.queries:
            out["queries"] = json.loads(json_util.dumps(self.queries))
        if self.date_field:
            out["date_field"] = self.date_field
        for bound in ("since", "until"):
            value = getattr(self, bound)
            if value is not None:
                out[bound] = utc(value).isoformat()
        if self.entity is not None:
            out["entity"] = {"entity": self.entity.entity,
                             "ids": json.loads(json_util.dumps(list(self.entity.ids)))}
        return out


def name_matches(patterns: Sequence[str], database: str, name: str) -> bool:
    return any(fnmatchcase(name, p) or fnmatchcase(f"{database}.{name}", p) for p in patterns)


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def collection_query(filters: MongoFilters, database: str, name: str) -> dict[str, Any]:
    """The server query for one collection: its configured query and the date range."""
    parts: list[Mapping[str, Any]] = []
    for pattern, query in filters.queries.items():
        if name_matches([pattern], database, name):
            parts.append(query)
    if filters.date_field and (filters.since or filters.until):
        bounds: dict[str, Any] = {}
        if filters.since:
            bounds["$gte"] = utc(filters.since)
        if filters.until:
            bounds["$lt"] = utc(filters.until)
        # A document without the field is kept: the range is about the documents that
        # have a date there (messages), not the collections that have none (projects).
        parts.append({"$or": [{filters.date_field: bounds},
                              {filters.date_field: {"$exists": False}}]})
    if not parts:
        return {}
    return dict(parts[0]) if len(parts) == 1 else {"$and": parts}


def item_path(database: str, name: str, suffix: str) -> str:
    # Collection names may hold "/" (and "%"): quoted, so a path is always db/coll.suffix.
    return f"{quote(database, safe='')}/{quote(name, safe='')}{suffix}"


def parse_item_path(path: str) -> tuple[str, str, str] | None:
    """(database, collection, suffix) of an item path; None for a path that is not one."""
    database, _, rest = path.partition("/")
    for suffix in (METADATA_SUFFIX, BSON_SUFFIX):
        if rest.endswith(suffix) and "/" not in rest and database:
            return unquote(database), unquote(rest[: -len(suffix)]), suffix
    return None


def display_url(url: str) -> str:
    """The URL without user, password and vault's own parameters: safe to show anywhere."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, hosts, parts.path, "", ""))


def split_url(url: str) -> tuple[str, MongoFilters]:
    """An ad-hoc URL -> (the URL for the driver, vault's filters from its parameters).
    Lists are comma-separated; `query.<coll>=<JSON>` adds a query; `entity` and `ids`
    select one entity's documents and everything below them."""
    from bson import json_util

    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in params if key in _VAULT_PARAMS}
    queries = {key[len("query."):]: json_util.loads(value)
               for key, value in params if key.startswith("query.")}
    theirs = [(k, v) for k, v in params if k not in _VAULT_PARAMS and not k.startswith("query.")]
    lists = {key: tuple(x for x in ours.get(key, "").split(",") if x) for key in _LIST_PARAMS}
    entity = None
    if "entity" in ours:
        entity = EntitySelection(ours["entity"], tuple(x for x in ours.get("ids", "").split(",")
                                                       if x))
    filters = MongoFilters(
        databases=lists["databases"],
        collections=lists["collections"],
        exclude_collections=lists["exclude_collections"],
        queries=queries,
        date_field=ours.get("date_field") or None,
        since=datetime.fromisoformat(ours["since"]) if ours.get("since") else None,
        until=datetime.fromisoformat(ours["until"]) if ours.get("until") else None,
        entity=entity,
    )
    driver_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(theirs), ""))
    return driver_url, filters


def url_database(url: str) -> str | None:
    """The database a URL's path names ("mongodb://h/chat" -> "chat")."""
    name = unquote(urlsplit(url).path.lstrip("/"))
    return name or None
