"""Read-only SQLite opens find the file named, whatever its path holds (`#`, `?`, `%`).

A hand-built `file:{path}?mode=ro` reads `#` as a fragment: `settings#2.db` opened
`settings` instead. Each test puts a decoy database where such a URI would land.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vault.foundation.sqlite_readonly import open_read_only, read_only_uri
from vault.journal.readonly import connect_read_only
from vault.sources.settings.table import SettingsTable

#: a database's name -> the file a hand-built URI opens instead (SQLite decodes `%23`)
DECOYS = {"settings#2.db": "settings", "settings?mode=ro.db": "settings",
          "settings%23.db": "settings#.db", "dir?1/settings.db": "dir"}
NAMES = list(DECOYS)


def _settings_db(path: Path, values: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value)")
        db.executemany("INSERT INTO settings VALUES (?, ?)", values.items())
    db.close()
    return path


@pytest.mark.parametrize("name", NAMES)
def test_a_settings_table_reads_the_file_named(tmp_path: Path, name: str) -> None:
    _settings_db(tmp_path / DECOYS[name], {"theme": "decoy"})
    assert SettingsTable(database=str(tmp_path / DECOYS[name])).read() == {"theme": "decoy"}
    real = _settings_db(tmp_path / name, {"theme": "dark", "retries": 3, "ratio": 0.5,
                                          "blob": b"\x00\x01", "unset": None})
    table = SettingsTable(database=str(real))
    assert table.read() == {"theme": "dark", "retries": 3, "ratio": 0.5,
                            "blob": b"\x00\x01", "unset": None}
    assert table.size_estimate() == sum(
        len(k) + len(v) for k, v in [("theme", "dark"), ("retries", "3"), ("ratio", "0.5"),
                                     ("blob", b"\x00\x01"), ("unset", b"")])


@pytest.mark.parametrize("name", NAMES)
def test_the_journal_reader_opens_the_file_named(tmp_path: Path, name: str) -> None:
    real = _settings_db(tmp_path / name, {"k": "real"})
    _settings_db(tmp_path / DECOYS[name], {"k": "decoy"})
    conn = connect_read_only(real)
    try:
        assert [tuple(r) for r in conn.execute("SELECT * FROM settings")] == [("k", "real")]
    finally:
        conn.close()


def test_a_read_only_open_writes_nothing(tmp_path: Path) -> None:
    real = _settings_db(tmp_path / "a#b.db", {"k": "v"})
    before = real.read_bytes()
    conn = open_read_only(real)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("INSERT INTO settings VALUES ('x', 1)")
    conn.close()
    assert real.read_bytes() == before
    with pytest.raises(sqlite3.OperationalError):
        open_read_only(tmp_path / "missing#1.db").execute("SELECT 1").fetchall()
    assert not (tmp_path / "missing#1.db").exists() and not (tmp_path / "missing").exists()


def test_the_uri_escapes_what_sqlite_would_parse(tmp_path: Path) -> None:
    uri = read_only_uri(tmp_path / "a#b?c%d.db")
    assert uri.endswith("/a%23b%3Fc%25d.db?mode=ro")
    assert read_only_uri(tmp_path / "x.db", immutable=True).endswith("/x.db?immutable=1")
