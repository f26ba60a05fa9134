"""`type = "mongodb"`: the `[[sources]]` model of a MongoDB deployment (databases, collections,
queries, a date range, secret collections)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from vault.config.secrets import SecretRef
from vault.config.source_parts import (
    DEFAULT_SECRET_KEYS,
    EntityLevel,
    SourceConfigBase,
    both_or_neither,
    check_entity_tree,
)
from vault.config.types import Name, Strict, checked_url, fail_at


def _extended_json_query(value: Any) -> dict[str, Any]:
    # A query is a TOML table or a JSON text, either in MongoDB extended JSON
    # ({"$oid": ...}, {"$date": ...}); decoded here so a typo fails at load time.
    from bson import json_util  # pymongo's bson: a runtime dependency of vault

    text = value if isinstance(value, str) else None
    if text is None:
        import json

        text = json.dumps(value, default=str)
    try:
        decoded = json_util.loads(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a MongoDB query in (extended) JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise ValueError("a query must be a JSON object such as {\"status\": \"open\"}")
    return decoded


MongoQuery = Annotated[dict[str, Any], BeforeValidator(_extended_json_query)]


class SecretCollectionConfig(Strict):
    """One `[[sources.secret_collections]]` entry of a MongoDB source ("coll" or
    "db.coll"): `secret_keys` applied to the keys of a key/value collection (`key_field`,
    `value_field`), else to field names and dotted paths at any depth; the matching values
    are redacted or sealed in the stored documents (docs/sources.md)."""

    collection: str = Field(min_length=1)
    key_field: str | None = None
    value_field: str | None = None

    check_pair: ClassVar[Any] = both_or_neither("field", "collection")


class MongoSourceConfig(SourceConfigBase):
    type: Literal["mongodb"]
    name: Name
    url: Annotated[str, AfterValidator(lambda url: checked_url(url, "mongodb", "mongodb+srv"))]
    databases: list[str] = []
    collections: list[str] = []
    exclude_collections: list[str] = []
    queries: dict[str, MongoQuery] = {}
    date_field: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    password: SecretRef | None = None
    entities: list[EntityLevel] = []
    # Secrets inside documents, as for SQLite/PostgreSQL tables: redacted or sealed in the
    # stored copy, never in the application's database.
    secret_collections: list[SecretCollectionConfig] = []
    secrets: Literal["redact", "encrypt"] = "redact"
    secret_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))

    @model_validator(mode="after")
    def _date_range_is_ordered(self) -> MongoSourceConfig:
        if (self.since or self.until) and not self.date_field:
            raise fail_at(("date_field",), "needed: since/until filter on this field")
        if self.since and self.until and _utc(self.since) >= _utc(self.until):
            raise fail_at(("until",), "must be later than since")
        return self

    @model_validator(mode="after")
    def _entities_form_a_tree(self) -> MongoSourceConfig:
        check_entity_tree(self.entities)
        return self


def _utc(value: datetime) -> datetime:
    # A date without a zone is UTC, as MongoDB stores dates.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
