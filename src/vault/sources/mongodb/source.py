"""The MongoDB source: selected collections as BSON in `_id` order, with their metadata.

A capture yields, per collection, `<db>/<coll>.metadata.json` (options and indexes, canonical
extended JSON) and `<db>/<coll>.bson` (its documents' raw BSON, concatenated, in `_id`
order: mongodump's layout). Documents go from the server to the snapshot as the bytes the
server sent, so every type survives, and `_id` order keeps unchanged documents at stable
offsets so they deduplicate between snapshots. On a replica set (or SecantusDB) every
read happens in one snapshot session, so the capture is one point in time.

Registered as type "mongodb" and for `mongodb://` / `mongodb+srv://` arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from vault.sources.base import PlannedRestore
from vault.sources.entities import Entity, EntitySelection
from vault.sources.mongodb.browse import BROWSER
from vault.sources.mongodb.client import connect, server_errors
from vault.sources.mongodb.selection import MongoFilters, display_url, split_url, url_database
from vault.sources.registry import register

if TYPE_CHECKING:
    from pymongo import MongoClient

    from vault.config.secrets import SecretRef
    from vault.sources.base import (
        Capture,
        CaptureContext,
        SourceEstimate,
        SourceRestoreRequest,
        SourceRestoreResult,
        StoredItems,
    )
    from vault.sources.mongodb.config import MongoSourceConfig
    from vault.sources.mongodb.secrets import LiveFields, SecretDocuments

__all__ = ["MongoSource", "from_config", "from_url"]


class MongoSource(PlannedRestore):
    """A MongoDB server's selected databases and collections."""

    type: ClassVar[str] = "mongodb"

    def __init__(self, name: str, url: str, *, password: SecretRef | None = None,
                 url_password: str | None = None, filters: MongoFilters | None = None,
                 entities: tuple[Entity, ...] = (),
                 secrets: SecretDocuments | None = None,
                 secrets_optional: bool = False) -> None:
        self.name = name
        self.secrets = secrets  # secret fields redacted or sealed in the stored copy
        # An undo copy of a restore's target protects the named collections it has.
        self.secrets_optional = secrets_optional
        self.url = url  # may hold a user name; never a password (that is `password`)
        self.password_ref = password
        self._url_password = url_password  # an ad-hoc URL's own password, kept out of url
        self.filters = filters or MongoFilters()
        self.entities = entities
        self.where = display_url(url)

    def select_entity(self, entity: str, ids: tuple[Any, ...]) -> MongoSource:
        """A copy that backs up one entity's documents (by `_id`) and all below them."""
        filters = dataclasses.replace(self.filters, entity=EntitySelection(entity, ids))
        return MongoSource(self.name, self.url, password=self.password_ref,
                           url_password=self._url_password, filters=filters,
                           entities=self.entities, secrets=self.secrets)

    def for_target(self, request: SourceRestoreRequest,
                   stored: StoredItems | None = None) -> MongoSource:
        """A source that captures exactly what a restore with `request` may change: the
        target database's affected collections, whole (for a snapshot taken before the
        restore, to undo it). With the snapshot's `stored` items the collections are the
        restore's own; without, they follow `only` / the entity / the source's selection."""
        from vault.sources.mongodb.plan import PlanError, target_filters
        from vault.sources.mongodb.restore import MongoRestoreRefused

        url, password = self.url, self._url_password
        if request.target is not None and "://" in request.target:
            url, password = _without_password(request.target)
        try:
            filters = target_filters(stored.paths() if stored is not None else None,
                                     target=request.target, only=request.only,
                                     query=request.query, entities=self.entities,
                                     filters=self.filters)
        except PlanError as exc:
            raise MongoRestoreRefused(detail=str(exc)) from None
        return MongoSource(self.name, url, password=self.password_ref,
                           url_password=password, filters=filters, secrets=self.secrets,
                           secrets_optional=True)

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "url": self.where,
                "database": url_database(self.url), "filters": self.filters.describe()}

    def connect(self, url: str | None = None) -> MongoClient[Any]:
        """A connected client for the source's server, or for `url` (a restore target)."""
        from vault.config.secrets import resolve_secret

        if url is None:
            url, password = self.url, self._url_password
        else:
            url, password = _without_password(url)
        if password is None and self.password_ref is not None:
            password = resolve_secret(self.password_ref, f"password of source {self.name!r}")
        return connect(url, password, display_url(url))

    def estimate(self) -> SourceEstimate:
        from vault.sources.mongodb.capture import estimate

        with self._client() as client:
            return estimate(client, self)

    @contextmanager
    def capture(self, context: CaptureContext) -> Iterator[Capture]:
        from vault.sources.mongodb.capture import capture

        with self._client() as client, capture(client, self, context) as result:
            yield result

    def restore(self, stored: StoredItems, request: SourceRestoreRequest) -> SourceRestoreResult:
        from vault.sources.mongodb.restore import restore
        from vault.sources.mongodb.secrets import revealed

        # Sealed secrets opened, redacted ones given the target's live values
        # (mongo_secrets), read before the restore writes anything.
        with revealed(stored, lambda plans: self._live_secrets(stored, request, plans),
                      request.sealer, self.name) as whole:
            return restore(self, whole, request)

    def _live_secrets(self, stored: StoredItems, request: SourceRestoreRequest,
                      plans: list[dict[str, Any]]) -> dict[str, LiveFields]:
        from vault.sources.mongodb.plan import PlanError, plan_restore
        from vault.sources.mongodb.secrets import live_fields

        try:
            plan = plan_restore(stored.paths(), target=request.target, only=request.only,
                                query=request.query, entities=self.entities)
        except PlanError:
            return {}  # the restore itself refuses it, with the reason
        targets = {c.source.full_name: c.target for c in plan.collections}
        client = self.connect(plan.target_url)
        try:
            with server_errors(display_url(plan.target_url or self.url)):
                return live_fields(client, targets, plans)
        finally:
            client.close()

    @contextmanager
    def _client(self) -> Iterator[MongoClient[Any]]:
        client = self.connect()
        try:
            with server_errors(self.where):
                yield client
        finally:
            client.close()


def _without_password(url: str) -> tuple[str, str | None]:
    """An ad-hoc URL's password is taken out, so no URL that is kept or shown holds it."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url, None
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=f"{user}@{hosts}")), unquote(password)


def from_config(entry: MongoSourceConfig) -> MongoSource:
    default_database = url_database(entry.url) or (
        entry.databases[0] if len(entry.databases) == 1 else None)
    filters = MongoFilters(
        databases=tuple(entry.databases),
        collections=tuple(entry.collections),
        exclude_collections=tuple(entry.exclude_collections),
        queries=dict(entry.queries),
        date_field=entry.date_field,
        since=entry.since,
        until=entry.until,
    )
    entities = tuple(
        Entity(e.name, _qualified(e.collection, default_database, entry.name), e.parent, e.key,
               e.date_field)
        for e in entry.entities
    )
    return MongoSource(entry.name, entry.url, password=entry.password, filters=filters,
                       entities=entities, secrets=_secret_documents(entry, default_database))


def _secret_documents(entry: MongoSourceConfig,
                      default_database: str | None) -> SecretDocuments | None:
    from vault.sources.mongodb.secrets import SecretCollection, SecretDocuments

    if not entry.secret_collections:
        return None
    return SecretDocuments(
        tuple(SecretCollection(_qualified(c.collection, default_database, entry.name),
                               c.key_field, c.value_field)
              for c in entry.secret_collections),
        entry.secrets, tuple(entry.secret_keys))


def _qualified(collection: str, default_database: str | None, source: str) -> str:
    if "." in collection:
        return collection
    if default_database is None:
        from vault.errors import ConfigError

        raise ConfigError(f"source {source}: write collection {collection!r} as "
                          "'db.coll' (the source does not name exactly one database)")
    return f"{default_database}.{collection}"


def from_url(url: str) -> MongoSource:
    """`mongodb://[user[:password]@]host[:port]/[db][?collections=a,b&...]` (ad hoc)."""
    driver_url, filters = split_url(url)
    driver_url, password = _without_password(driver_url)
    database = url_database(driver_url)
    return MongoSource(database or "mongodb", driver_url, url_password=password,
                       filters=filters)


register("mongodb", from_config=from_config, schemes=("mongodb", "mongodb+srv"),
         from_url=from_url, browser=BROWSER)
