"""Row-by-row SQLite restore: every mode x conflict policy on real database files."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vault.sources.base import CaptureContext, MemoryStoredItems, SourceRestoreRequest
from vault.sources.base import capture_to_memory as capture_items
from vault.sources.sqlite.db import (
    BusyPolicy,
    SqliteConflicts,
    SqliteConstraint,
    SqliteLocked,
    SqliteRenameRefused,
    SqliteTableMismatch,
    SqliteTargetExists,
)
from vault.sources.sqlite.rowplan import TableSides, plan_rows
from vault.sources.sqlite.rows import TableRows, TableShape, fingerprint, key_text
from vault.sources.sqlite.source import SqliteSource

SCHEMA = """
CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, v, note TEXT);
CREATE INDEX items_note ON items (note);
CREATE TABLE audit (item INTEGER, what TEXT);
CREATE TRIGGER items_audit AFTER INSERT ON items
    BEGIN INSERT INTO audit VALUES (new.id, 'inserted'); END;
CREATE TABLE loose (x, y);
CREATE TABLE pairs (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
"""
TABLES = ("items", "audit", "loose", "pairs")


def make_snapshot_db(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO items (id, v, note) VALUES (?, ?, ?)", [
        (1, 1, "int"), (2, 1.0, "real"), (3, "1", "text"), (4, b"1", "blob"),
        (5, None, "null"), (6, 2**63 - 1, "big"), (7, "same", "kept")])
    conn.executemany("INSERT INTO loose (rowid, x, y) VALUES (?, ?, ?)",
                     [(1, "one", 1.5), (2, "two", b"\x00"), (5, None, -0.0), (9, "nine", 9)])
    conn.executemany("INSERT INTO pairs VALUES (?, ?)",
                     [("a", 1), ("b", "two"), ("c", None), ("d", 4.5)])
    conn.execute("COMMIT")
    conn.close()


def diverge(path: Path) -> None:
    """Rows deleted, changed (some only in their storage class) and added."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("DELETE FROM items WHERE id IN (2, 5)")
    conn.execute("UPDATE items SET v = 1.0 WHERE id = 1")   # 1 -> 1.0
    conn.execute("UPDATE items SET v = 1 WHERE id = 3")     # '1' -> 1
    conn.execute("UPDATE items SET note = 'edited' WHERE id = 6")
    conn.execute("INSERT INTO items (id, v, note) VALUES (20, 'added', 'new')")
    conn.execute("DELETE FROM loose WHERE rowid = 2")
    conn.execute("UPDATE loose SET y = '1.5' WHERE rowid = 1")
    conn.execute("INSERT INTO loose (rowid, x, y) VALUES (7, 'seven', 7)")
    conn.execute("DELETE FROM pairs WHERE k = 'a'")
    conn.execute("UPDATE pairs SET v = 'TWO' WHERE k = 'b'")
    conn.execute("INSERT INTO pairs VALUES ('z', 26)")
    conn.execute("COMMIT")
    conn.close()


def rows(path: Path) -> dict[str, dict[Any, tuple[tuple[str, Any], ...]]]:
    """Every table's rows by key, each value with its storage class."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found: dict[str, dict[Any, tuple[tuple[str, Any], ...]]] = {}
        for table in TABLES:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            typed = ", ".join(f"typeof({c}), {c}" for c in columns)
            key = "k" if table == "pairs" else "rowid"
            found[table] = {
                row[0]: tuple(zip(row[1::2], row[2::2], strict=True))
                for row in conn.execute(f"SELECT {key}, {typed} FROM {table}")}
        return found
    finally:
        conn.close()


def triggers(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")]
    finally:
        conn.close()


@pytest.fixture
def world(tmp_path: Path) -> tuple[SqliteSource, MemoryStoredItems, Path]:
    """A captured database, and a target that has moved on since."""
    original = tmp_path / "app.db"
    make_snapshot_db(original)
    source = SqliteSource("app", original)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    stored = capture_items(source, CaptureContext(scratch_dir=str(scratch)))
    target = tmp_path / "target.db"
    shutil.copyfile(original, target)
    diverge(target)
    return source, stored, target


def restore(source: SqliteSource, stored: MemoryStoredItems, target: Path,
            **request: Any) -> dict[str, Any]:
    return source.restore(stored, SourceRestoreRequest(target=str(target), **request)).details


def expected_rows(snapshot: dict[str, dict[Any, Any]], before: dict[str, dict[Any, Any]],
                  mode: str, policy: str, tables: tuple[str, ...],
                  id_map: dict[str, dict[str, int]]) -> dict[str, dict[Any, Any]]:
    """What the issue says each mode and policy leaves, worked out from both sides."""
    result = {table: dict(found) for table, found in before.items()}
    for table in tables:
        now, snap = result[table], snapshot[table]
        for key, row in snap.items():
            if key not in now or (policy == "overwrite" and now[key] != row):
                now[key] = row
            elif now[key] != row and policy == "rename":
                new = id_map[table][key_text(key)]
                # items' id column is its rowid: the renamed row carries its new id
                now[new] = (("integer", new), *row[1:]) if table == "items" else row
        if mode == "overwrite":
            for key in [k for k in before[table] if k not in snap]:
                del now[key]
    return result


CASES = [(mode, policy) for mode in ("overwrite", "merge")
         for policy in ("skip", "overwrite", "rename", None)]


@pytest.mark.parametrize(("mode", "policy"), CASES)
def test_every_mode_and_policy_leaves_exactly_the_rows_its_dry_run_planned(
        world: tuple[SqliteSource, MemoryStoredItems, Path], mode: str,
        policy: str | None) -> None:
    source, stored, target = world
    # rename needs integer keys: pairs (keyed by text) is left out and must stay as it is
    only = ("items", "loose") if policy == "rename" else ()
    tables = only or ("items", "audit", "loose", "pairs")
    snapshot, before, raw = rows(Path(stored.meta["path"])), rows(target), target.read_bytes()

    dry = restore(source, stored, target, mode=mode, on_conflict=policy, only=only,
                  dry_run=True)
    assert target.read_bytes() == raw, "a dry run writes nothing"
    done = restore(source, stored, target, mode=mode, on_conflict=policy, only=only)

    assert done["plan"] == dry["plan"] and done["id_map"] == dry["id_map"]
    effective = policy or ("skip" if mode == "merge" else "overwrite")
    assert done["plan"]["on_conflict"] == effective
    after = rows(target)
    assert after == expected_rows(snapshot, before, mode, effective, tables, done["id_map"])
    assert triggers(target) == triggers(Path(stored.meta["path"]))  # set aside, then back
    totals = done["plan"]["totals"]
    conflicts = {"items": 3, "loose": 1, "pairs": 1}  # rows on both sides that differ
    created = {"items": 2, "loose": 1, "pairs": 1}
    deleted = {"items": 1, "audit": 1, "loose": 1, "pairs": 1}
    assert totals["create"] == sum(created.get(t, 0) for t in tables)
    differing = [i for i in done["plan"]["items"] if i["reason"].startswith("differs")]
    assert len(differing) == sum(conflicts.get(t, 0) for t in tables)
    assert {i["action"] for i in differing} == {effective}
    assert totals["delete"] == (sum(deleted.get(t, 0) for t in tables)
                                if mode == "overwrite" else 0)
    items = {"create": 2, "skip": 2}
    items[effective] = items.get(effective, 0) + 3
    assert done["tables"]["items"] == items | ({"delete": 1} if mode == "overwrite" else {})


def test_overwrite_restores_the_snapshot_row_for_row_type_for_type(
        world: tuple[SqliteSource, MemoryStoredItems, Path]) -> None:
    source, stored, target = world
    restore(source, stored, target, mode="overwrite")
    assert rows(target) == rows(Path(stored.meta["path"]))
    assert rows(target)["items"][1] == (("integer", 1), ("integer", 1), ("text", "int"))
    assert rows(target)["items"][3] == (("integer", 3), ("text", "1"), ("text", "text"))


def test_rename_keeps_both_rows_and_maps_old_ids_to_new(
        world: tuple[SqliteSource, MemoryStoredItems, Path]) -> None:
    source, stored, target = world
    details = restore(source, stored, target, mode="merge", on_conflict="rename",
                      only=("items",))
    # 20 is the target's highest id; both sides' AUTOINCREMENT counters are lower
    assert details["id_map"] == {"items": {"1": 21, "3": 22, "6": 23}}
    found = rows(target)["items"]
    assert found[21] == (("integer", 21), ("integer", 1), ("text", "int"))
    assert found[1] == (("integer", 1), ("real", 1.0), ("text", "int"))
    assert found[23][2] == ("text", "big")


def test_rename_is_refused_for_a_table_keyed_by_text_and_nothing_is_written(
        world: tuple[SqliteSource, MemoryStoredItems, Path]) -> None:
    source, stored, target = world
    raw = target.read_bytes()
    with pytest.raises(SqliteRenameRefused, match=r"table 'pairs' is keyed by \(\"k\"\), not "
                       "an integer rowid.*nothing was restored"):
        restore(source, stored, target, mode="merge", on_conflict="rename")
    assert target.read_bytes() == raw


def test_fail_names_the_conflicts_and_writes_nothing(
        world: tuple[SqliteSource, MemoryStoredItems, Path]) -> None:
    source, stored, target = world
    raw = target.read_bytes()
    for dry_run in (True, False):
        with pytest.raises(SqliteConflicts) as caught:
            restore(source, stored, target, mode="overwrite", on_conflict="fail",
                    dry_run=dry_run)
        assert str(caught.value) == (
            f"5 row(s) differ between the snapshot and {target} (items: 3, loose: 1, "
            "pairs: 1); nothing was restored: choose --on-conflict skip, overwrite or rename")
    assert target.read_bytes() == raw


def test_fail_without_conflicts_restores_what_is_missing(
        world: tuple[SqliteSource, MemoryStoredItems, Path], tmp_path: Path) -> None:
    source, stored, _ = world
    target = tmp_path / "fresh.db"
    make_snapshot_db(target)
    conn = sqlite3.connect(target)
    conn.execute("DELETE FROM loose WHERE rowid = 2")
    conn.execute("INSERT INTO loose (rowid, x) VALUES (3, 'three')")
    conn.commit()
    conn.close()
    details = restore(source, stored, target, mode="merge", on_conflict="fail")
    assert details["plan"]["totals"] == {"create": 1, "overwrite": 0, "skip": 21, "rename": 0,
                                         "delete": 0, "conflict": 0}
    assert rows(target)["loose"] == rows(Path(stored.meta["path"]))["loose"] | {
        3: (("text", "three"), ("null", None))}


def test_new_target_plans_every_row_as_created_and_refuses_an_existing_file(
        world: tuple[SqliteSource, MemoryStoredItems, Path], tmp_path: Path) -> None:
    source, stored, target = world
    new = tmp_path / "sub" / "new.db"
    dry = restore(source, stored, new, mode="new-target", dry_run=True)
    assert not new.exists() and not new.parent.exists()
    done = restore(source, stored, new, mode="new-target")
    assert done["plan"] == dry["plan"]
    assert dry["plan"]["totals"]["create"] == 7 + 7 + 4 + 4 == len(dry["plan"]["items"])
    assert rows(new) == rows(Path(stored.meta["path"]))
    only = restore(source, stored, tmp_path / "pairs.db", mode="new-target", only=("pairs",))
    assert only["plan"]["groups"] == {"pairs": {"create": 4}}
    with pytest.raises(SqliteTargetExists):
        restore(source, stored, target, mode="new-target", dry_run=True)


def test_a_table_the_target_lacks_is_created_with_its_index_and_trigger(
        world: tuple[SqliteSource, MemoryStoredItems, Path]) -> None:
    source, stored, target = world
    conn = sqlite3.connect(target)
    conn.execute("DROP TABLE items")
    conn.commit()
    conn.close()
    details = restore(source, stored, target, mode="merge", only=("items",))
    assert details["tables_created"] == ["items"]
    assert rows(target)["items"] == rows(Path(stored.meta["path"]))["items"]
    assert triggers(target) == triggers(Path(stored.meta["path"]))
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'items_note'"
                        ).fetchone() == (1,)
    conn.close()


def test_a_broken_constraint_rolls_everything_back(
        world: tuple[SqliteSource, MemoryStoredItems, Path]) -> None:
    source, stored, target = world
    conn = sqlite3.connect(target)
    conn.execute("UPDATE items SET note = 'real' WHERE id = 20")  # row 2 will want it
    conn.execute("CREATE UNIQUE INDEX notes_once ON items (note)")
    conn.commit()
    conn.close()
    before = rows(target)
    with pytest.raises(SqliteConstraint, match=r"UNIQUE constraint failed: items\.note.*"
                       r"nothing was restored"):
        restore(source, stored, target, mode="merge")
    assert rows(target) == before


def test_a_target_table_without_the_snapshot_columns_is_refused(
        world: tuple[SqliteSource, MemoryStoredItems, Path]) -> None:
    source, stored, target = world
    conn = sqlite3.connect(target)
    conn.execute("ALTER TABLE loose DROP COLUMN y")
    conn.commit()
    conn.close()
    before = rows_without_loose(target)
    with pytest.raises(SqliteTableMismatch, match=r"table 'loose' of .* cannot be restored row "
                       r"by row: the target lacks column\(s\) y; restore it whole"):
        restore(source, stored, target, mode="overwrite")
    assert rows_without_loose(target) == before
    # A target that is not there is a new one in every mode: the captured file, whole
    # (test_sqlite_unkeyable checks it type for type).
    gone = target.with_name("gone.db")
    assert restore(source, stored, gone, mode="merge")["plan"]["mode"] == "new-target"
    assert rows(gone) == rows(Path(stored.meta["path"]))


def rows_without_loose(path: Path) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return [conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("items", "audit", "pairs", "loose")]
    finally:
        conn.close()


LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO pairs VALUES ('held', 1)")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def lock_holder() -> Iterator[Any]:
    processes: list[subprocess.Popen[str]] = []

    def hold(db: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout is not None and process.stdout.readline() == "locked\n"
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait(timeout=10)


def test_a_writer_holding_the_lock_fails_the_restore_clearly_and_changes_nothing(
        world: tuple[SqliteSource, MemoryStoredItems, Path], lock_holder: Any) -> None:
    _, stored, target = world
    before = rows(target)
    holder = lock_holder(target)
    source = SqliteSource("app", target, busy=BusyPolicy(retries=2, seconds=0.4))
    with pytest.raises(SqliteLocked, match=f"database {target} is locked by another process; "
                       "retried 2 times over"):
        source.restore(stored, SourceRestoreRequest(mode="overwrite"))
    with pytest.raises(SqliteLocked):
        source.restore(stored, SourceRestoreRequest(mode="overwrite", dry_run=True))
    holder.kill()  # its uncommitted row is rolled back: the target is as it was
    holder.wait(timeout=10)
    assert rows(target) == before


def test_for_target_captures_the_database_a_restore_would_change(tmp_path: Path) -> None:
    source = SqliteSource("app", tmp_path / "app.db", busy=BusyPolicy(retries=1, seconds=1))
    other = source.for_target(SourceRestoreRequest(target=str(tmp_path / "copy.db")))
    assert (other.name, other.path, other.busy) == ("app", tmp_path / "copy.db", source.busy)
    assert source.for_target(SourceRestoreRequest()).path == source.path


def test_fingerprints_tell_storage_classes_apart() -> None:
    prints = {fingerprint([value]) for value in (1, 1.0, "1", b"1", None, 0.0, -0.0, 0, "")}
    assert len(prints) == 9
    assert fingerprint([1, "a"]) == fingerprint([1, "a"]) != fingerprint(["a", 1])
    assert [key_text(k) for k in (5, ("a'b", None), (b"\x01", 1.5))] == [
        "5", "'a''b', NULL", "X'01', 1.5"]


def test_rename_keys_start_above_every_key_and_counter() -> None:
    shape = TableShape("t", ("id", "v"), "integer_pk", ('"id"',))
    snap = TableRows({1: b"a", 2: b"b", 3: b"c"}, {1: 1, 2: 1, 3: 1})
    target = TableRows({1: b"x", 2: b"y", 10: b"z"}, {1: 1, 2: 1, 10: 1})
    planned = plan_rows([TableSides(shape, snap, target, sequence=40)], mode="merge",
                        on_conflict="rename")
    assert planned.id_map() == {"t": {"1": 41, "2": 42}}
    assert [(i.key, i.action) for i in planned.plan.items] == [
        ("1", "rename"), ("2", "rename"), ("3", "create")]
