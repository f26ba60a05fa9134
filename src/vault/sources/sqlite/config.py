"""`type = "sqlite"`: the `[[sources]]` model of a SQLite database file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vault.config.source_parts import (
    DEFAULT_SECRET_KEYS,
    EntityLevel,
    SecretTableConfig,
    SourceConfigBase,
    check_entity_tree,
)
from vault.config.types import ConfigPath, Name, NonNegative


class SqliteSourceConfig(SourceConfigBase):
    type: Literal["sqlite"]
    name: Name
    path: ConfigPath
    # Secrets inside the database (e.g. API keys in a settings table): redacted or sealed
    # in the stored copy, never in the application's database.
    secret_tables: list[SecretTableConfig] = []
    secrets: Literal["redact", "encrypt"] = "redact"
    secret_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))
    # "backup": the online backup API, page for page (deduplicates best, see
    # docs/performance.md); "vacuum": VACUUM INTO, a compact rewrite.
    copy_method: Literal["backup", "vacuum"] = "backup"
    # A locked database is retried this many times, pauses doubling and adding up to
    # busy_seconds, before the backup of this source fails.
    busy_retries: NonNegative = 5
    busy_seconds: float = Field(default=10.0, gt=0)
    # Tables as application entities (`collection` names the table, `key` the column
    # holding the parent row's primary key), as for MongoDB.
    entities: list[EntityLevel] = []

    @model_validator(mode="after")
    def _entities_form_a_tree(self) -> SqliteSourceConfig:
        check_entity_tree(self.entities)
        return self
