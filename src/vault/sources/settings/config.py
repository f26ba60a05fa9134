"""`type = "settings"`: the `[[sources]]` model of an application's settings (a file or a
SQLite settings table)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vault.config.source_parts import DEFAULT_SECRET_KEYS, SourceConfigBase, SqlName
from vault.config.types import ConfigPath, Name, fail_at


class SettingsSourceConfig(SourceConfigBase):
    type: Literal["settings"]
    name: Name
    path: ConfigPath | None = None
    format: Literal["json", "toml", "yaml", "env"] | None = None
    database: ConfigPath | None = None
    table: SqlName = "settings"
    key_column: SqlName = "key"
    value_column: SqlName = "value"
    secrets: Literal["redact", "encrypt"] = "redact"
    secret_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))

    @model_validator(mode="after")
    def _a_file_or_a_table(self) -> SettingsSourceConfig:
        if (self.path is None) == (self.database is None):
            message = "give either path (a settings file) or database (a SQLite settings table)"
            raise fail_at(("path",), message)
        if self.database is not None and self.format is not None:
            raise fail_at(("format",), "format is for a settings file, not a database table")
        return self
