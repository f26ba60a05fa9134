"""`type = "postgresql"`: the `[[sources]]` model of a PostgreSQL database."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vault.config.secrets import SecretRef
from vault.config.source_parts import (
    DEFAULT_SECRET_KEYS,
    EntityLevel,
    SecretTableConfig,
    SourceConfigBase,
    check_entity_tree,
)
from vault.config.types import ConfigPath, Name, Port


class PostgresSourceConfig(SourceConfigBase):
    type: Literal["postgresql"]
    name: Name
    host: str
    port: Port = 5432
    dbname: str
    user: str
    password: SecretRef | None = None
    tables: list[str] = []
    pg_dump_path: ConfigPath | None = None  # psql and pg_restore are looked up beside it
    # Secrets inside the database, as for SQLite: redacted or sealed in the stored rows.
    secret_tables: list[SecretTableConfig] = []
    secrets: Literal["redact", "encrypt"] = "redact"
    secret_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))
    # Tables as application entities (counts and date ranges in each snapshot), as for
    # SQLite; `collection` is "table" or "schema.table".
    entities: list[EntityLevel] = []

    @model_validator(mode="after")
    def _entities_form_a_tree(self) -> PostgresSourceConfig:
        check_entity_tree(self.entities)
        return self
