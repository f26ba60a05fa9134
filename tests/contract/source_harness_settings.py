"""The settings harness: one live settings source per format (JSON, TOML, YAML, .env and
a SQLite settings table), each holding values of every type its format has.

The settings are read back with the format's own parser (json, tomllib, PyYAML's
safe_load; vault's .env grammar, which no standard parser shares), one record per
top-level key in group "settings", every value tagged with its type.
"""

from __future__ import annotations

import json
import sqlite3
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import tomli_w
import yaml
from source_harness import Data, EntityCase, Expected, Fields, HarnessContext, Live, typed

from vault.sources.settings.env import parse_env

GROUP = "settings"

COMMON: dict[str, Any] = {
    "title": "Grüße, 東京 ✓ \"quoted\"", "port": 8080, "ratio": 0.25, "debug": False,
    "big": 2**62, "servers": [{"host": "a", "port": 1}, {"host": "b", "port": 2}],
    "nested": {"deep": {"list": [1, "two", 3.0]}, "empty": {}},
}
JSON_DOC = {**COMMON, "nothing": None, "listed": [None, True, -0.5]}
TOML_DOC = {**COMMON, "started": date(2024, 2, 29), "alarm": time(7, 30, 15),
            "at": datetime(2024, 2, 29, 12, 0, 1, tzinfo=UTC), "local": datetime(2000, 1, 1)}
YAML_DOC = {**COMMON, "nothing": None, "started": date(2024, 2, 29),
            "blob": b"\x00\x01\xff", "1": "a key that looks like a number"}
ENV_TEXT = """# written by hand; comments survive a restore
title="Grüße, 東京 ✓ \\"quoted\\""
port=8080
ratio=0.25
export debug=false
empty=
multi="line one\\nline two"
single='literal $HOME \\n'
"""
TABLE_ROWS: list[tuple[str, Any]] = [
    ("title", "Grüße, 東京 ✓"), ("port", 8080), ("ratio", 0.25), ("debug", 0),
    ("big", 2**62), ("blob", b"\x00\x01\xff"), ("nothing", None), ("empty", ""),
]
#: what damage() does to every variant: one key changed, one removed, one added
DAMAGE_EXPECTED = Expected(create={(GROUP, "title")}, overwrite={(GROUP, "port")},
                           delete={(GROUP, "extra")})


@dataclass
class FileFormat:
    suffix: str
    write: Callable[[Any], bytes]
    parse: Callable[[bytes], Any]


FORMATS = {
    "json": FileFormat(".json", lambda d: json.dumps(d, indent=2, ensure_ascii=False).encode(),
                       json.loads),
    "toml": FileFormat(".toml", lambda d: tomli_w.dumps(d).encode(),
                       lambda b: tomllib.loads(b.decode())),
    "yaml": FileFormat(".yaml", lambda d: yaml.safe_dump(d, allow_unicode=True).encode(),
                       yaml.safe_load),
    "env": FileFormat(".env", lambda text: str(text).encode(), lambda b: parse_env(b.decode())),
}


class SettingsLive:
    """What every settings variant shares: no entities, and a snapshot browsed as one
    table, "settings": a record per top-level key with its value, type for type."""

    entities: EntityCase | None = None

    def lose_entity(self) -> None:
        raise AssertionError("settings have no entities")

    def browse_view(self, data: Data) -> Data:
        return data

    def browsed(self, group: str, key: Any, fields: Fields) -> Any:
        [(name, value)] = fields
        assert name == "value"
        return typed(value)


@dataclass
class LiveSettingsFile(SettingsLive):
    path: Path
    format: FileFormat
    entry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def read(self) -> Data:
        settings = self.format.parse(self.path.read_bytes())
        return {GROUP: {str(key): typed(value) for key, value in settings.items()}}

    def elsewhere(self) -> tuple[str, Live]:
        copy = self.path.with_name(f"copy{self.format.suffix}")
        return str(copy), LiveSettingsFile(copy, self.format)

    def damage(self) -> Expected:
        if self.format.suffix == ".env":  # edited as a person would, line by line
            lines = self.path.read_text().splitlines(keepends=True)
            kept = [line.replace("port=8080", "port=8081") for line in lines
                    if not line.startswith("title=")]
            self.path.write_text("".join(kept) + "extra=added after the backup\n")
            return DAMAGE_EXPECTED
        settings = self.format.parse(self.path.read_bytes())
        del settings["title"]
        settings["port"] = 8081
        settings["extra"] = "added after the backup"
        self.path.write_bytes(self.format.write(settings))
        return DAMAGE_EXPECTED


@contextmanager
def settings_file_live(ctx: HarnessContext, format: str) -> Iterator[Live]:
    spec = FORMATS[format]
    path = ctx.tmp_path / "live" / f"app{spec.suffix}"
    path.parent.mkdir()
    documents = {"json": JSON_DOC, "toml": TOML_DOC, "yaml": YAML_DOC, "env": ENV_TEXT}
    path.write_bytes(spec.write(documents[format]))
    path.chmod(0o640)
    yield LiveSettingsFile(path, spec, {"type": "settings", "name": f"contract-{format}",
                                        "path": str(path), "format": format})


@dataclass
class LiveSettingsTable(SettingsLive):
    database: Path
    entry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.database, isolation_level=None)

    def elsewhere(self) -> tuple[str, Live]:
        """Another application database whose settings table is empty."""
        copy = self.database.with_name("copy.db")
        make_settings_database(copy, [])
        return str(copy), LiveSettingsTable(copy)

    def read(self) -> Data:
        conn = self._connect()
        try:
            rows = conn.execute("SELECT name, val FROM app_settings ORDER BY name").fetchall()
        finally:
            conn.close()
        return {GROUP: {name: typed(value) for name, value in rows}}

    def damage(self) -> Expected:
        conn = self._connect()
        try:
            conn.executescript("""
                DELETE FROM app_settings WHERE name = 'title';
                UPDATE app_settings SET val = 8081 WHERE name = 'port';
                INSERT INTO app_settings (name, val) VALUES ('extra', 'added after the backup');
            """)
        finally:
            conn.close()
        return DAMAGE_EXPECTED


def make_settings_database(database: Path, rows: list[tuple[str, Any]]) -> None:
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        # other tables and columns beside the settings, which a restore leaves alone
        conn.executescript("CREATE TABLE app_settings (name TEXT PRIMARY KEY, val, "
                           "changed_at TEXT DEFAULT '2026-01-01');"
                           "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);")
        conn.executemany("INSERT INTO app_settings (name, val) VALUES (?, ?)", rows)
    finally:
        conn.close()


@contextmanager
def settings_table_live(ctx: HarnessContext) -> Iterator[Live]:
    database = ctx.tmp_path / "live" / "app.db"
    database.parent.mkdir()
    make_settings_database(database, TABLE_ROWS)
    yield LiveSettingsTable(database, {
        "type": "settings", "name": "contract-table", "database": str(database),
        "table": "app_settings", "key_column": "name", "value_column": "val"})
