"""Parts several `[[sources]]` models share: secret tables, the entity tree, the default
secret key globs. Each source type's own model lives in its package
(`vault.sources.<type>.config`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from vault.config.types import Name, Strict, fail_at


class SourceConfigBase(Strict):
    """What every `[[sources]]` entry has: its type (the discriminator, narrowed to a
    literal by each type's model) and its name."""

    type: str
    name: Name


def both_or_neither(part: str, container: str) -> Any:
    """The validator of a key/value container of secrets: it names both its key and value
    `part`s, or neither (then secret_keys match its column or field names)."""

    def check(model: Strict) -> Strict:
        key, value = getattr(model, f"key_{part}"), getattr(model, f"value_{part}")
        if (key is None) != (value is None):
            raise fail_at((f"key_{part}",), f"give both key_{part} and value_{part} (a "
                          f"key/value {container}), or neither ({part}s whose names match "
                          "secret_keys)")
        return model

    return model_validator(mode="after")(check)


class SecretTableConfig(Strict):
    """One `[[sources.secret_tables]]` entry of a SQLite or PostgreSQL source: `secret_keys`
    applied to the keys of a key/value table (`key_column`, `value_column`), else to its
    column names; the matching cells are redacted or sealed in the stored copy
    (docs/sources.md). A PostgreSQL table is "table" or "schema.table"."""

    table: str = Field(min_length=1)
    key_column: str | None = None
    value_column: str | None = None

    check_pair: ClassVar[Any] = both_or_neither("column", "table")


class EntityLevel(Strict):
    """One `[[sources.entities]]` entry: an application entity stored in a collection.
    A child names its `parent` entity and the `key` field of its documents that holds the
    parent document's `_id` (messages.session_id -> sessions._id)."""

    name: str = Field(min_length=1)
    collection: str = Field(min_length=1)  # "coll" in the source's database, or "db.coll"
    parent: str | None = None
    key: str | None = None
    date_field: str | None = None


def check_entity_tree(entities: list[EntityLevel]) -> None:
    """Entity names unique, parent and key together, parents declared, no cycle."""
    names = [entity.name for entity in entities]
    for index, entity in enumerate(entities):
        where: tuple[str | int, ...] = ("entities", index)
        if names.count(entity.name) > 1:
            raise fail_at((*where, "name"), f"entity {entity.name!r} is declared twice")
        if (entity.parent is None) != (entity.key is None):
            field = "key" if entity.key is None else "parent"
            raise fail_at((*where, field), "parent and key go together: the parent entity"
                        " and the field holding its _id")
        if entity.parent is not None and entity.parent not in names:
            raise fail_at((*where, "parent"), f"no entity is named {entity.parent!r}")
        if _has_cycle(entities, entity):
            raise fail_at((*where, "parent"), "the parents form a cycle, not a tree")


def _has_cycle(entities: list[EntityLevel], start: EntityLevel) -> bool:
    parents = {entity.name: entity.parent for entity in entities}
    seen = {start.name}
    current = start.parent
    while current is not None:
        if current in seen:
            return True
        seen.add(current)
        current = parents.get(current)
    return False


DEFAULT_SECRET_KEYS: list[str] = [
    "*password*", "*passwd*", "*passphrase*", "*_pass", "*secret*", "*token*", "*_key",
    "*apikey*", "*private_key*", "*credential*", "*auth*", "*cookie*", "*dsn*",
    "*database_url*",
]  # fmt: skip

#: a table or column name in a settings table source
SqlName = Annotated[str, Field(min_length=1)]
