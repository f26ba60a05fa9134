"""SQLite tables whose rows cannot be keyed (NULLs in a TEXT PRIMARY KEY, which SQLite
allows in a rowid table; no key at all) are never a reason to refuse a restore: into a
new file the captured database is written whole, into a live one the table is replaced
whole and the plan says so. Real databases, the real `vault` command."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from vault.planning.restore_plan import plan_whole
from vault.sources.base import CaptureContext, SourceRestoreRequest
from vault.sources.base import capture_to_memory as capture_items
from vault.sources.entities import Entity
from vault.sources.sqlite.db import SqliteTableMismatch
from vault.sources.sqlite.source import SqliteSource
from vault_tui.data.restore_plan import plan_rows

SCHEMA = """
CREATE TABLE usage (code TEXT PRIMARY KEY, n INTEGER, note);
CREATE INDEX usage_n ON usage (n);
CREATE TABLE log (what TEXT);
CREATE TRIGGER usage_logged AFTER INSERT ON usage
    BEGIN INSERT INTO log VALUES ('usage ' || coalesce(new.code, 'null')); END;
CREATE VIEW usage_totals AS SELECT code, sum(n) AS total FROM usage GROUP BY code;
CREATE TABLE nokey (rowid, _rowid_, oid, v);
CREATE TABLE pairs (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
"""
TABLES = ("usage", "log", "nokey", "pairs")
WHOLE = ("usage", "nokey")


def make_db(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO usage VALUES (?, ?, ?)", [
        ("a", 1, "text"), (None, 2, "twin"), (None, 2, "twin"), (None, 3, b"\x00\xff"),
        ("b", 1.5, None), (None, 2**63 - 1, 1.0)])
    conn.executemany("INSERT INTO nokey VALUES (?, ?, ?, ?)", [
        (1, "one", 1.5, b"x"), (1, "one", 1.5, b"x"), (None, None, None, None)])
    conn.executemany("INSERT INTO pairs VALUES (?, ?)", [("p", 1), ("q", "two"), ("r", None)])
    conn.execute("COMMIT")
    conn.close()


def diverge(path: Path) -> None:
    """The live database moved on: NULL-keyed rows changed, added and removed."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("UPDATE usage SET n = 20 WHERE code IS NULL AND n = 2 AND rowid ="
                 " (SELECT min(rowid) FROM usage WHERE code IS NULL AND n = 2)")
    conn.execute("DELETE FROM usage WHERE code = 'b'")
    conn.execute("INSERT INTO usage VALUES (NULL, 99, 'added since')")
    conn.execute("DELETE FROM nokey WHERE v IS NULL")
    conn.execute("INSERT INTO nokey VALUES (7, 'seven', 7.0, NULL)")
    conn.execute("UPDATE pairs SET v = 'TWO' WHERE k = 'q'")
    conn.execute("INSERT INTO pairs VALUES ('z', 26)")
    conn.execute("COMMIT")
    conn.close()


def typed_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    """A table's rows, each value beside its storage class, in a stable order."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        typed = ", ".join(f"typeof({c}), {c}" for c in (f'"{c}"' for c in columns))
        return sorted((tuple(row) for row in conn.execute(f"SELECT {typed} FROM {table}")),
                      key=repr)
    finally:
        conn.close()


def schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [tuple(row) for row in conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name")]
    finally:
        conn.close()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def app_db(tmp_path: Path) -> Path:
    db = tmp_path / "app.db"
    make_db(db)
    return db


@pytest.fixture
def backed_up(vault_repo: Any, app_db: Path) -> str:
    return str(vault_repo.json("backup", f"sqlite://{app_db}").summary["snapshot_id"][:8])


def test_a_new_file_gets_the_whole_captured_database(vault_repo: Any, app_db: Path,
                                                      backed_up: str, tmp_path: Path) -> None:
    target = tmp_path / "restored" / "new.db"
    preview = vault_repo.run("restore", "preview", backed_up, "--target", target)
    assert preview.returncode == 0, preview.stderr
    assert ("usage: written whole, not row by row: 3 of the snapshot's rows share a "
            'primary key ("code") with another row: NULL in a PRIMARY KEY') in preview.stdout
    assert "nokey: written whole, not row by row: it has no primary key" in preview.stdout
    assert not target.exists()
    done = vault_repo.json("restore", backed_up, "--target", target)
    assert done.code == 0, done.last
    assert integrity(target) == "ok"
    assert schema(target) == schema(app_db)  # indexes, trigger and view too
    for table in TABLES:
        assert typed_rows(target, table) == typed_rows(app_db, table), table
    plan = done.last["details"]["plan"]
    assert plan["groups"]["usage"] == {"create": 6}
    assert set(plan["whole"]) == set(WHOLE)


@pytest.mark.parametrize("mode", ["overwrite", "merge", "new-target"])
def test_a_missing_or_empty_target_is_new_in_every_mode(
        vault_repo: Any, app_db: Path, backed_up: str, tmp_path: Path, mode: str) -> None:
    missing, empty = tmp_path / "missing.db", tmp_path / "empty.db"
    empty.touch(mode=0o640)
    for target in (missing, empty):
        done = vault_repo.json("restore", backed_up, "--target", target, "--mode", mode)
        assert done.code == 0, done.last
        assert done.last["details"]["plan"]["mode"] == "new-target"
        assert integrity(target) == "ok" and schema(target) == schema(app_db)
        for table in TABLES:
            assert typed_rows(target, table) == typed_rows(app_db, table), table
    assert empty.stat().st_mode & 0o777 == 0o640  # the file it took the place of
    again = vault_repo.json("restore", backed_up, "--target", empty, "--mode", "new-target")
    assert again.code != 0 and "already exists" in again.last["message"]


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_a_live_database_has_its_unkeyable_tables_replaced_whole(
        vault_repo: Any, app_db: Path, backed_up: str, tmp_path: Path, mode: str) -> None:
    live = tmp_path / "live.db"
    shutil.copyfile(app_db, live)
    diverge(live)
    before = {table: typed_rows(live, table) for table in TABLES}
    preview = vault_repo.json("restore", "preview", backed_up, "--target", live,
                              "--mode", mode)
    assert preview.code == 0, preview.last
    plan = preview.last["plan"]
    assert plan["whole"]["usage"].startswith("3 of the snapshot's rows share a primary key")
    assert plan["whole"]["nokey"].startswith("it has no primary key and no rowid")
    # paired by content: 4 rows as they were, 2 back in, 2 of the target's out
    assert plan["groups"]["usage"] == {"create": 2, "delete": 2, "skip": 4}
    assert plan["groups"]["nokey"] == {"create": 1, "delete": 1, "skip": 2}
    assert plan["destructive"] is True
    names = [row[0] for row in plan_rows(plan)]  # the TUI's preview table
    assert "usage (replaced whole)" in names and "pairs" in names
    text = vault_repo.run("restore", "preview", backed_up, "--target", live, "--mode", mode)
    assert "  usage: replaced whole, not row by row: 3 of the snapshot's" in text.stdout
    assert "  nokey: replaced whole, not row by row: it has no primary key" in text.stdout
    assert {table: typed_rows(live, table) for table in TABLES} == before  # a dry run

    done = vault_repo.json("restore", backed_up, "--target", live, "--mode", mode, "--yes")
    assert done.code == 0, done.last
    assert done.last["details"]["plan"]["groups"] == plan["groups"]
    assert integrity(live) == "ok"
    for table in WHOLE:
        assert typed_rows(live, table) == typed_rows(app_db, table), table
    for table in ("log", "pairs"):  # keyed: row by row (the trigger never fires again)
        if mode == "overwrite":
            assert typed_rows(live, table) == typed_rows(app_db, table), table
        else:  # merge: the differing rows and the target's own rows are kept
            assert typed_rows(live, table) == before[table], table
    assert schema(live) == schema(app_db)

    undo = vault_repo.json("restore", "undo", done.last["job_id"])
    assert undo.code == 0, undo.last
    assert {table: typed_rows(live, table) for table in TABLES} == before


def test_a_table_keyed_in_the_snapshot_but_not_in_the_target(app_db: Path,
                                                            tmp_path: Path) -> None:
    """NULL keys that appeared in the live database since the capture: still replaced
    whole (the target's rows cannot be named either), from the source's own restore."""
    conn = sqlite3.connect(app_db, isolation_level=None)
    conn.execute("DELETE FROM usage WHERE code IS NULL")
    conn.close()
    source = SqliteSource("app", app_db)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    stored = capture_items(source, CaptureContext(scratch_dir=str(scratch)))
    want = typed_rows(app_db, "usage")
    conn = sqlite3.connect(app_db, isolation_level=None)
    conn.execute("INSERT INTO usage VALUES (NULL, 5, 'x'), (NULL, 5, 'x')")
    conn.close()
    done = source.restore(stored, SourceRestoreRequest(
        target=str(app_db), mode="overwrite", scratch_dir=str(scratch))).details
    assert done["plan"]["whole"] == {"usage": "1 of the target's rows share a primary key "
                                              '("code") with another row: NULL in a '
                                              "PRIMARY KEY",
                                     "nokey": done["plan"]["whole"]["nokey"]}
    assert typed_rows(app_db, "usage") == want


def test_an_entity_cannot_be_picked_out_of_an_unkeyable_table(app_db: Path,
                                                             tmp_path: Path) -> None:
    """The one refusal left: selecting rows by key in a table whose keys repeat. The whole
    table and the whole database still restore."""
    entity = Entity(name="use", collection="usage")
    source = SqliteSource("app", app_db, entities=(entity,))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    stored = capture_items(source, CaptureContext(scratch_dir=str(scratch)))
    before = typed_rows(app_db, "usage")
    with pytest.raises(SqliteTableMismatch, match=(
            r"table 'usage' of .* cannot be restored row by row: 3 of the snapshot's rows "
            r"share a primary key .*, so an entity's rows cannot be picked out of it")):
        source.restore(stored, SourceRestoreRequest(
            target=str(app_db), mode="merge", query={"entity": "use", "ids": ["a"]},
            scratch_dir=str(scratch)))
    assert typed_rows(app_db, "usage") == before
    whole = source.restore(stored, SourceRestoreRequest(
        target=str(app_db), mode="overwrite", only=("usage",), scratch_dir=str(scratch)))
    assert whole.details["plan"]["whole"].keys() == {"usage"}


def test_plan_whole_pairs_rows_by_content_as_multisets() -> None:
    items = plan_whole("t", [(b"A", 3), (b"A", 3), (b"B", 4)], [b"A", b"C", b"C"],
                       mode="merge")
    assert [(i.key, i.action, i.bytes) for i in items] == [
        ("#1", "skip", 0), ("#2", "create", 3), ("#3", "create", 4),
        ("target #2", "delete", 0), ("target #3", "delete", 0)]
    fresh = plan_whole("t", [(b"A", 3)], [], mode="new-target")
    assert [(i.action, i.reason) for i in fresh] == [("create", "missing in target")]
