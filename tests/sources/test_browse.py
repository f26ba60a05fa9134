"""Browsing stored SQLite and settings snapshots through `vault.sources.browse`: what a
snapshot holds (from its meta) and its records, read back from real captures and equal,
type for type, to what the live source held when it was captured."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vault.errors import UsageError
from vault.sources.base import CaptureContext, StoredItems, capture_to_memory
from vault.sources.browse import RecordReader, SnapshotContents, SourceBrowser, StoredTable
from vault.sources.entities import Entity
from vault.sources.registry import browser_for, known_types
from vault.sources.settings.codec import REDACTED
from vault.sources.settings.source import SettingsSource
from vault.sources.sqlite.db import SqliteTableNotFound
from vault.sources.sqlite.source import SqliteSource

SCHEMA = """
CREATE TABLE projects (id INTEGER PRIMARY KEY, title TEXT, budget REAL, logo BLOB, note);
CREATE TABLE sessions (id INTEGER PRIMARY KEY, project_id INTEGER REFERENCES projects(id),
                       started TEXT);
CREATE TABLE tags (name TEXT PRIMARY KEY, weight INTEGER) WITHOUT ROWID;
CREATE TABLE log (line TEXT);
CREATE TABLE pairs (a INTEGER, b INTEGER, PRIMARY KEY (a, b));
"""
ENTITIES = (Entity("project", "projects"),
            Entity("session", "sessions", "project", "project_id", "started"))
# every storage class, in several columns, with NULLs
PROJECTS: list[tuple[Any, ...]] = [
    (1, "alpha", 10.5, b"\x00\x01", None), (2, "beta\ttab", -3.0, None, 7),
    (3, None, None, b"", "note"), (4, "δ", 1e300, b"\xff" * 3, 2.25)]


def browser(source_type: str) -> SourceBrowser:
    found = browser_for(source_type)
    assert found is not None, source_type
    return found


def values(reader: RecordReader, table: str, **page: Any) -> list[tuple[Any, ...]]:
    """(key, value, value, ...) of the records of a page, each value as read."""
    return [(r.key, *(v for _, v in r.fields)) for r in reader.records(table, **page).records]


def typed(rows: list[tuple[Any, ...]]) -> list[tuple[tuple[type, Any], ...]]:
    return [tuple((type(v), v) for v in row) for row in rows]


def test_every_source_type_has_a_browser_and_files_none() -> None:
    assert {"mongodb", "postgresql", "settings", "sqlite"} <= set(known_types())
    for source_type in known_types():
        found = browser(source_type)
        assert callable(found.contents) and callable(found.reader)
    assert browser_for("files") is None and browser_for("nosuch") is None


@pytest.fixture
def chat(tmp_path: Path) -> tuple[Path, StoredItems]:
    """A captured SQLite database; the live file changes after the capture."""
    db = tmp_path / "chat.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(SCHEMA)
    conn.executemany("INSERT INTO projects VALUES (?, ?, ?, ?, ?)", PROJECTS)
    conn.executemany("INSERT INTO sessions VALUES (?, ?, ?)",
                     [(s, 1 + s % 4, f"2026-11-{s:02d}") for s in range(1, 13)])
    conn.executemany("INSERT INTO tags VALUES (?, ?)", [("b", 2), ("a", 1)])
    conn.executemany("INSERT INTO log VALUES (?)", [("one",), ("two",), ("three",)])
    conn.execute("INSERT INTO pairs VALUES (1, 2)")
    scratch = tmp_path / "capture"
    scratch.mkdir()
    stored = capture_to_memory(SqliteSource("chat", db, entities=ENTITIES),
                               CaptureContext(scratch_dir=str(scratch)))
    conn.execute("DELETE FROM projects WHERE id = 2")
    conn.execute("UPDATE sessions SET started = NULL")
    conn.close()
    return db, stored


def test_sqlite_contents_are_the_tables_and_entities_the_capture_counted(
        chat: tuple[Path, StoredItems]) -> None:
    _, stored = chat
    contents = browser("sqlite").contents(stored)
    assert contents == SnapshotContents(
        "rows", "tables",
        tables=(StoredTable("log", 3), StoredTable("pairs", 1), StoredTable("projects", 4),
                StoredTable("sessions", 12), StoredTable("tags", 2)),
        entities=ENTITIES, entity_tree=contents.entity_tree, items=tuple(stored.paths()))
    [project] = contents.entity_tree
    [session] = project.children
    assert (project.name, project.documents, session.name, session.documents) == (
        "project", 4, "session", 12)
    assert (session.first, session.last) == ("2026-11-01", "2026-11-12")


def test_sqlite_records_are_the_stored_rows_type_for_type(
        chat: tuple[Path, StoredItems], tmp_path: Path) -> None:
    _, stored = chat
    scratch = tmp_path / "browse"
    reader = browser("sqlite").reader(stored, scratch)
    try:
        # the rows as captured (project 2 is gone from the live file since)
        assert typed(values(reader, "projects")) == typed(PROJECTS)
        [first] = reader.records("projects", limit=1).records
        assert [name for name, _ in first.fields] == ["title", "budget", "logo", "note"]
        sessions = reader.records("sessions", ("project_id", 2))
        assert [r.key for r in sessions.records] == [1, 5, 9] and sessions.total == 3
        assert sessions.records[0].fields == (("project_id", 2), ("started", "2026-11-01"))
        # a table without a primary key is keyed by rowid; WITHOUT ROWID by its key
        assert values(reader, "log") == [(1, "one"), (2, "two"), (3, "three")]
        assert values(reader, "tags") == [("a", 1), ("b", 2)]
    finally:
        reader.close()
    assert list(scratch.iterdir()) == [], "the scratch copy is removed"


def test_sqlite_records_come_a_page_at_a_time(chat: tuple[Path, StoredItems],
                                              tmp_path: Path) -> None:
    _, stored = chat
    reader = browser("sqlite").reader(stored, tmp_path / "browse")
    try:
        whole = reader.records("sessions")
        pages = [reader.records("sessions", limit=5, offset=start) for start in (0, 5, 10)]
        assert [len(p.records) for p in pages] == [5, 5, 2]
        assert all(p.total == whole.total == 12 for p in pages)
        assert [r for p in pages for r in p.records] == list(whole.records)
        assert reader.records("sessions", offset=12).records == ()
    finally:
        reader.close()


def test_sqlite_records_of_what_cannot_be_listed_are_refused(
        chat: tuple[Path, StoredItems], tmp_path: Path) -> None:
    _, stored = chat
    reader = browser("sqlite").reader(stored, tmp_path / "browse")
    try:
        with pytest.raises(SqliteTableNotFound, match=r"no table or view 'nosuch'.*projects"):
            reader.records("nosuch")
        with pytest.raises(UsageError, match="table 'pairs' are not listed one by one"):
            reader.records("pairs")
    finally:
        reader.close()


def test_settings_records_are_the_stored_settings_type_for_type(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text('name = "app"\nport = 8080\nratio = 0.5\ndebug = true\n'
                    'released = 2026-11-20\ntags = ["a", "b"]\npassword = "hunter2"\n'
                    '[db]\nhost = "db.local"\n')
    stored = capture_to_memory(SettingsSource("app", path=str(path)))
    path.write_text('name = "changed"\n')  # the snapshot is what is browsed
    contents = browser("settings").contents(stored)
    assert (contents.tables, contents.entities, contents.items) == ((), (), ("settings.json",))
    reader = browser("settings").reader(stored, tmp_path / "browse")
    page = reader.records("settings")
    found = {r.key: r.fields for r in page.records}
    assert page.total == 8 and list(found) == sorted(found)
    expected: dict[str, Any] = {
        "name": "app", "port": 8080, "ratio": 0.5, "debug": True,
        "released": date(2026, 11, 20), "tags": ["a", "b"], "db": {"host": "db.local"}}
    assert {k: (type(v), v) for k, ((_, v),) in found.items() if k != "password"} == {
        k: (type(v), v) for k, v in expected.items()}
    assert found["password"] == (("value", REDACTED),), "a secret is never shown"
    assert "hunter2" not in json.dumps([repr(v) for v in found.values()])
    with pytest.raises(UsageError, match="one table, 'settings'"):
        reader.records("users")
    reader.close()
