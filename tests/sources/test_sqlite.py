"""The SQLite source against real database files and real writer / lock-holder processes."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vault.errors import OperationFailed, UsageError
from vault.sources.base import (
    CaptureContext,
    MemoryStoredItems,
    Source,
    SourceRestoreRequest,
    capture_to_memory,
)
from vault.sources.registry import source_from_config, source_from_url
from vault.sources.sqlite.config import SqliteSourceConfig
from vault.sources.sqlite.db import (
    BusyPolicy,
    SqliteInUse,
    SqliteLocked,
    SqliteNotADatabase,
    SqliteNotFound,
    SqliteRestoreFailed,
    SqliteTableNotFound,
    SqliteTargetExists,
    backoff_delays,
)
from vault.sources.sqlite.source import SqliteSource

SCHEMA = """
CREATE TABLE kinds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    i INTEGER, r REAL, t TEXT, b BLOB, anything
);
CREATE INDEX kinds_t ON kinds (t);
CREATE UNIQUE INDEX kinds_i ON kinds (i) WHERE i IS NOT NULL;
CREATE TABLE audit (kind_id INTEGER, note TEXT);
CREATE TRIGGER kinds_audit AFTER INSERT ON kinds
    BEGIN INSERT INTO audit VALUES (new.id, 'inserted ' || coalesce(new.t, '-')); END;
CREATE VIEW texts AS SELECT id, t FROM kinds WHERE t IS NOT NULL;
CREATE TABLE pairs (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE loose (x, y);
"""

KINDS_ROWS: list[tuple[Any, ...]] = [
    (1, 1.5, "plain", b"\x00\x01\xff", None),
    (-(2**63), -0.0, "日本語 — ünïcödé 🎉", b"", 42),
    (2**63 - 1, 1e308, "", b"\x00" * 5000, 3.25),
    (None, None, None, None, None),
    (7, float("inf"), "x" * 10_000, bytes(range(256)), "text in an untyped column"),
    (8, 2.0, "8", b"8", b"blob in an untyped column"),
    (9, 0.5, "deleted", b"", None),
]


def make_database(path: Path, journal_mode: str = "wal") -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO kinds (i, r, t, b, anything) VALUES (?, ?, ?, ?, ?)",
                     KINDS_ROWS)
    conn.executemany("INSERT INTO pairs VALUES (?, ?)", [("a", 1), ("b", "two"), ("c", None)])
    conn.executemany("INSERT INTO loose (rowid, x, y) VALUES (?, ?, ?)",
                     [(10, "ten", 1.0), (3, "three", b"3"), (99, None, 99)])
    conn.execute("DELETE FROM kinds WHERE i = 9")  # AUTOINCREMENT remembers id 7
    conn.execute("COMMIT")
    conn.close()


def dump(path: Path) -> dict[str, Any]:
    """Everything restore must give back: schema, every row with its rowid and the
    storage class of every value, and AUTOINCREMENT counters."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"
                              " ORDER BY type, name").fetchall()
        tables = [name for kind, name, _, _ in schema
                  if kind == "table" and not name.startswith("sqlite_")]
        rows = {}
        for table in tables:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            typed = ", ".join(f"{c}, typeof({c})" for c in columns)
            key = "" if table == "pairs" else "rowid, "
            rows[table] = conn.execute(f"SELECT {key}{typed} FROM {table} ORDER BY 1").fetchall()
        sequence = conn.execute("SELECT name, seq FROM sqlite_sequence ORDER BY 1").fetchall()
        return {"schema": schema, "rows": rows, "sequence": sequence}
    finally:
        conn.close()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def restore(source: Source, stored: MemoryStoredItems, target: Path | None,
            **request: Any) -> dict[str, Any]:
    result = source.restore(stored, SourceRestoreRequest(
        target=str(target) if target else None, **request))
    return result.details


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def capture(source: Source, scratch: Path) -> MemoryStoredItems:
    stored = capture_to_memory(source, CaptureContext(scratch_dir=str(scratch)))
    assert list(scratch.iterdir()) == [], "the scratch copy must be removed"
    return stored


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_round_trip_keeps_every_storage_class_and_schema_object(
        tmp_path: Path, scratch: Path, journal_mode: str) -> None:
    db = tmp_path / "app.db"
    make_database(db, journal_mode)
    source = SqliteSource("app", db)
    stored = capture(source, scratch)

    target = tmp_path / "restored" / "app.db"
    details = restore(source, stored, target)

    assert integrity(target) == "ok"
    assert dump(target) == dump(db)
    assert details["tables"] == {"audit": 7, "kinds": 6, "loose": 3, "pairs": 3}
    kinds = dump(target)["rows"]["kinds"]
    assert {row[4] for row in kinds} == {"integer", "null"}  # typeof(i)
    assert {row[12] for row in kinds} == {"integer", "real", "text", "blob", "null"}
    conn = sqlite3.connect(target)
    conn.execute("INSERT INTO kinds (t) VALUES ('after restore')")  # trigger and sequence work
    assert conn.execute("SELECT max(id) FROM kinds").fetchone() == (8,)
    assert conn.execute("SELECT note FROM audit WHERE kind_id = 8").fetchone() == (
        "inserted after restore",)
    conn.close()


def test_meta_and_estimate_describe_the_database(tmp_path: Path, scratch: Path) -> None:
    db = tmp_path / "app.db"
    make_database(db, "wal")
    source = SqliteSource("app", db)

    estimate = source.estimate()
    assert estimate.details["tables"] == 4
    assert estimate.bytes == db.stat().st_size + estimate.details["wal_bytes"]
    assert estimate.items == 1

    meta = capture(source, scratch).meta
    assert meta["sqlite_version"] == sqlite3.sqlite_version
    assert meta["journal_mode"] == "wal"
    assert meta["page_size"] == 4096
    assert meta["tables"] == {"audit": 7, "kinds": 6, "loose": 3, "pairs": 3}
    assert meta["file_bytes"] == meta["page_size"] * meta["page_count"]
    assert source.describe() == {"type": "sqlite", "name": "app", "path": str(db),
                                 "copy": "backup"}


def test_vacuum_copy_restores_the_same_rows(tmp_path: Path, scratch: Path) -> None:
    db = tmp_path / "app.db"
    make_database(db, "wal")
    source = SqliteSource("app", db, copy="vacuum")
    stored = capture(source, scratch)
    target = tmp_path / "restored.db"
    restore(source, stored, target)
    assert integrity(target) == "ok"
    assert dump(target) == dump(db)


# --- a live database ---------------------------------------------------------------------

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
seq = 0
while True:
    seq += 1
    parts = 1 + seq % 4
    conn.execute("BEGIN IMMEDIATE")
    for part in range(parts):
        conn.execute("INSERT INTO events (seq, part, parts, payload)"
                     " VALUES (?, ?, ?, randomblob(300))", (seq, part, parts))
    conn.execute("UPDATE progress SET last_seq = ?", (seq,))
    conn.execute("COMMIT")
    if seq == 20:
        print("writing", flush=True)
    time.sleep(0.0005)
"""


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A process inserting transactions of 1-4 rows into a database, until stopped."""
    db = tmp_path / "live.db"
    process: subprocess.Popen[str] | None = None

    def start(journal_mode: str) -> subprocess.Popen[str]:
        nonlocal process
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.executescript(
            "CREATE TABLE events (seq INTEGER, part INTEGER, parts INTEGER, payload BLOB);"
            "CREATE INDEX events_seq ON events (seq);"
            "CREATE TABLE progress (last_seq INTEGER); INSERT INTO progress VALUES (0);")
        conn.close()
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(db)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None
        assert process.stdout.readline() == "writing\n", process.stderr
        return process

    yield db, start  # type: ignore[misc]
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


def committed_prefix(path: Path) -> int:
    """The last sequence number in a restored database, after checking that it holds
    whole transactions 1..last and nothing else."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        groups = conn.execute("SELECT seq, count(*), min(parts), max(parts),"
                              " count(DISTINCT part) FROM events GROUP BY seq ORDER BY seq"
                              ).fetchall()
        (last_seq,) = conn.execute("SELECT last_seq FROM progress").fetchone()
    finally:
        conn.close()
    assert [seq for seq, *_ in groups] == list(range(1, len(groups) + 1)), "not a prefix"
    for seq, count, low, high, distinct in groups:
        assert low == high == count == distinct == 1 + seq % 4, f"torn transaction {seq}"
    assert last_seq == len(groups), "progress and events disagree"
    return int(last_seq)


@pytest.mark.parametrize(("journal_mode", "captures"), [("wal", 20), ("delete", 6)])
def test_captures_of_a_database_being_written_are_consistent(
        tmp_path: Path, scratch: Path, writer: Any, journal_mode: str, captures: int) -> None:
    db, start = writer
    process = start(journal_mode)
    source = SqliteSource("live", db)
    seen: list[int] = []
    for number in range(captures):
        stored = capture(source, scratch)
        target = tmp_path / f"restored-{number}.db"
        restore(source, stored, target)
        assert integrity(target) == "ok"
        seen.append(committed_prefix(target))
        assert stored.meta["tables"]["events"] == sum(1 + s % 4 for s in range(1, seen[-1] + 1))
        target.unlink()
    assert process.poll() is None, process.stderr
    assert seen == sorted(seen) and seen[-1] > seen[0], f"the writer did not move: {seen}"
    print(f"\n{journal_mode}: {captures} captures while writing, last seq {seen}")


def test_a_table_is_replaced_inside_a_database_that_is_being_written(
        tmp_path: Path, scratch: Path, writer: Any) -> None:
    db, start = writer
    process = start("wal")
    source = SqliteSource("live", db)
    stored = capture(source, scratch)
    snapshot = tmp_path / "snapshot.db"
    restore(source, stored, snapshot)
    captured = committed_prefix(snapshot)

    details = restore(source, stored, db, only=("events",), mode="replace")

    assert details["tables"]["events"] == stored.meta["tables"]["events"]
    assert process.poll() is None, "the writer must only have waited for its lock"
    assert writes_go_on(db), "the writer is stuck"
    process.terminate()
    process.wait(timeout=10)
    assert integrity(db) == "ok"
    conn = sqlite3.connect(db)
    restored = conn.execute("SELECT seq, part, payload FROM events WHERE seq <= ?"
                            " ORDER BY seq, part", (captured,)).fetchall()
    conn.close()
    conn = sqlite3.connect(snapshot)
    assert restored == conn.execute("SELECT seq, part, payload FROM events ORDER BY seq, part"
                                    ).fetchall()
    conn.close()


def writes_go_on(db: Path, within: float = 10.0) -> bool:
    def last_seq() -> int:
        conn = sqlite3.connect(db, timeout=30)
        try:
            return int(conn.execute("SELECT last_seq FROM progress").fetchone()[0])
        finally:
            conn.close()

    first, deadline = last_seq(), time.monotonic() + within
    while time.monotonic() < deadline:
        if last_seq() > first:
            return True
        time.sleep(0.05)
    return False


# --- locks ---------------------------------------------------------------------------------

LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "wal":
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")  # WAL readers are blocked only so
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO kinds (t) VALUES ('held')")
if sys.argv[2] == "wal":
    conn.execute("COMMIT")  # the exclusive locking mode keeps the lock after it
print("locked", flush=True)
sys.stdin.readline()
if conn.in_transaction:
    conn.execute("COMMIT")
print("released", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[Any]:
    processes: list[subprocess.Popen[str]] = []

    def hold(db: Path, journal_mode: str) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db), journal_mode],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_a_locked_database_fails_clearly_after_retries(
        tmp_path: Path, scratch: Path, lock_holder: Any, journal_mode: str) -> None:
    db = tmp_path / "app.db"
    make_database(db, journal_mode)
    lock_holder(db, journal_mode)
    source = SqliteSource("app", db, busy=BusyPolicy(retries=3, seconds=0.6))

    started = time.monotonic()
    with pytest.raises(SqliteLocked) as caught:
        capture(source, scratch)
    elapsed = time.monotonic() - started

    message = str(caught.value)
    assert message.startswith(f"database {db} is locked by another process; retried 3 times "
                              "over "), message
    assert message.endswith(" s")
    assert elapsed >= 0.6
    assert isinstance(caught.value, OperationFailed) and caught.value.exit_code == 1
    assert list(scratch.iterdir()) == []


def test_a_lock_released_while_retrying_is_waited_for(
        tmp_path: Path, scratch: Path, lock_holder: Any) -> None:
    db = tmp_path / "app.db"
    make_database(db, "delete")
    holder = lock_holder(db, "delete")
    source = SqliteSource("app", db, busy=BusyPolicy(retries=5, seconds=6.0))
    assert holder.stdin is not None
    release = threading.Timer(0.5, lambda: (holder.stdin.write("go\n"), holder.stdin.flush()))
    release.start()
    started = time.monotonic()
    try:
        stored = capture(source, scratch)
    finally:
        release.join()
    assert time.monotonic() - started >= 0.5  # it waited for the lock
    assert stored.meta["tables"]["kinds"] == 7  # the row the holder committed on release
    target = tmp_path / "restored.db"
    restore(source, stored, target)
    assert dump(target)["rows"]["kinds"][-1][7] == "held"


# --- bad input -----------------------------------------------------------------------------


def test_a_missing_file_or_a_file_that_is_no_database_fails_clearly(
        tmp_path: Path, scratch: Path) -> None:
    missing = SqliteSource("gone", tmp_path / "gone.db")
    with pytest.raises(SqliteNotFound) as caught:
        capture(missing, scratch)
    assert str(caught.value) == f"database {tmp_path}/gone.db does not exist"
    with pytest.raises(SqliteNotFound):
        missing.estimate()

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all\n" * 1000)
    with pytest.raises(SqliteNotADatabase, match=re.escape(f"{junk} is not a SQLite database")):
        capture(SqliteSource("junk", junk), scratch)
    with pytest.raises(SqliteNotADatabase):
        SqliteSource("junk", junk).estimate()
    with pytest.raises(SqliteNotADatabase):
        capture(SqliteSource("dir", tmp_path), scratch)
    assert junk.read_bytes() == b"this is not a database at all\n" * 1000
    assert not (tmp_path / "gone.db").exists()


def test_a_corrupt_snapshot_is_refused_and_the_target_kept(
        tmp_path: Path, scratch: Path) -> None:
    db = tmp_path / "app.db"
    make_database(db, "delete")
    source = SqliteSource("app", db)
    stored = capture(source, scratch)
    conn = sqlite3.connect(db)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'kinds_t'").fetchone()
    conn.close()
    data = bytearray(stored.data["app.db"])
    data[(root - 1) * 4096:(root - 1) * 4096 + 8] = b"\xff" * 8  # an index's page header
    broken = MemoryStoredItems({"app.db": bytes(data)}, stored.meta)
    before = db.read_bytes()
    with pytest.raises(SqliteRestoreFailed, match="nothing was replaced"):
        restore(source, broken, None, mode="replace")
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "scratch"]


# --- restore ---------------------------------------------------------------------------------


def test_selective_restore_builds_a_database_of_just_that_table(
        tmp_path: Path, scratch: Path) -> None:
    db = tmp_path / "app.db"
    make_database(db, "wal")
    source = SqliteSource("app", db)
    stored = capture(source, scratch)
    target = tmp_path / "kinds.db"

    details = restore(source, stored, target, only=("kinds",))

    assert details["tables"] == {"kinds": 6}
    assert integrity(target) == "ok"
    original, restored = dump(db), dump(target)
    assert restored["rows"] == {"kinds": original["rows"]["kinds"]}
    assert {row[1] for row in restored["schema"]} == {
        "kinds", "kinds_t", "kinds_i", "kinds_audit", "sqlite_sequence"}
    assert restored["sequence"] == [("kinds", 7)]
    conn = sqlite3.connect(target)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # as the original
    conn.close()


def test_selective_replace_swaps_one_table_inside_an_existing_database(
        tmp_path: Path, scratch: Path) -> None:
    db = tmp_path / "app.db"
    make_database(db, "wal")
    source = SqliteSource("app", db)
    stored = capture(source, scratch)
    snapshot = dump(db)
    app = sqlite3.connect(db, isolation_level=None)  # the application stays connected
    app.execute("DELETE FROM loose")
    app.execute("INSERT INTO pairs VALUES ('new', 'kept')")
    app.execute("DROP INDEX kinds_t")
    app.execute("ALTER TABLE loose ADD COLUMN migrated TEXT")  # the schema moved on

    details = restore(source, stored, db, only=("loose", "kinds"), mode="replace")

    app.close()
    now = dump(db)
    assert details["tables"] == {"kinds": 6, "loose": 3}
    assert integrity(db) == "ok"
    assert now["rows"]["loose"] == snapshot["rows"]["loose"]
    assert now["rows"]["kinds"] == snapshot["rows"]["kinds"]
    assert ("new", "text", "kept", "text") in now["rows"]["pairs"]  # untouched
    assert now["schema"] == snapshot["schema"]  # the index came back with its table


def test_selective_restore_of_an_unknown_table_names_the_known_ones(
        tmp_path: Path, scratch: Path) -> None:
    db = tmp_path / "app.db"
    make_database(db, "wal")
    source = SqliteSource("app", db)
    stored = capture(source, scratch)
    with pytest.raises(SqliteTableNotFound,
                       match=re.escape("no table or view 'nope' (it has: audit, kinds, "
                                       "loose, pairs, texts)")):
        restore(source, stored, tmp_path / "x.db", only=("nope",))
    assert not (tmp_path / "x.db").exists()


def test_restore_never_clobbers_without_mode_replace(tmp_path: Path, scratch: Path) -> None:
    db = tmp_path / "app.db"
    make_database(db, "delete")
    source = SqliteSource("app", db)
    stored = capture(source, scratch)
    other = tmp_path / "other.db"
    other.write_bytes(b"precious")

    for target, only in [(other, ()), (other, ("kinds",)), (None, ())]:
        with pytest.raises(SqliteTargetExists, match='already exists; restore to another'):
            restore(source, stored, target, only=only)
    assert other.read_bytes() == b"precious"

    restore(source, stored, other, mode="replace")  # asked for: replaced
    assert dump(other) == dump(db)


def test_restore_over_the_original_replaces_it_atomically(tmp_path: Path, scratch: Path) -> None:
    db = tmp_path / "app.db"
    make_database(db, "wal")
    os.chmod(db, 0o640)
    source = SqliteSource("app", db)
    stored = capture(source, scratch)
    snapshot = dump(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DELETE FROM kinds")
    conn.execute("INSERT INTO pairs VALUES ('later', 1)")

    with pytest.raises(SqliteInUse, match="is open in another connection"):
        restore(source, stored, None, mode="replace")  # its WAL holds unfolded commits
    conn.close()
    inode = db.stat().st_ino
    restore(source, stored, None, mode="replace")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "scratch"]
    assert dump(db) == snapshot
    assert integrity(db) == "ok"
    assert db.stat().st_ino != inode  # renamed into place, not rewritten in place
    assert db.stat().st_mode & 0o777 == 0o640


def test_restore_requests_it_cannot_serve_fail_clearly(tmp_path: Path, scratch: Path) -> None:
    db = tmp_path / "app.db"
    make_database(db, "delete")
    source = SqliteSource("app", db)
    stored = capture(source, scratch)
    with pytest.raises(SqliteTableNotFound):
        restore(source, stored, tmp_path / "x.db", only=("sqlite_sequence",))
    with pytest.raises(UsageError, match="selects an entity with --query"):
        restore(source, stored, tmp_path / "x.db", query={"id": 1})
    with pytest.raises(OperationFailed, match="the target is a directory"):
        restore(source, stored, scratch, mode="replace")
    with pytest.raises(OperationFailed, match="cannot make the scratch copy in"):
        capture_to_memory(source, CaptureContext(scratch_dir=str(tmp_path / "missing")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "scratch"]


# --- configuration and URLs -----------------------------------------------------------------


def test_config_and_url_build_the_source(tmp_path: Path) -> None:
    entry = SqliteSourceConfig(type="sqlite", name="chat", path=tmp_path / "chat.db",
                               busy_retries=2, busy_seconds=1.5, copy_method="vacuum")
    source = source_from_config(entry)
    assert isinstance(source, SqliteSource) and isinstance(source, Source)
    assert (source.path, source.copy, source.busy) == (
        tmp_path / "chat.db", "vacuum", BusyPolicy(retries=2, seconds=1.5))

    by_url = source_from_url(f"sqlite://{tmp_path}/My App.db")
    assert isinstance(by_url, SqliteSource)
    assert (by_url.name, by_url.path) == ("my-app", tmp_path / "My App.db")
    for relative in ("sqlite://app.db", "sqlite://./app.db"):
        with pytest.raises(UsageError, match="needs an absolute path"):
            source_from_url(relative)


def test_backoff_pauses_double_and_add_up_to_the_budget() -> None:
    assert backoff_delays(5, 10.0) == pytest.approx([10 / 31 * 2**n for n in range(5)])
    assert sum(backoff_delays(3, 0.6)) == pytest.approx(0.6)
    assert backoff_delays(0, 10.0) == []
    assert BusyPolicy(retries=0, seconds=3).attempt_timeout == 1.0
