"""Undo: a destructive restore keeps a safety copy first, and `vault restore undo` puts
the target back exactly, also after the restore was killed midway."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest


def _drift(target: Path) -> None:
    """The target moved on since the snapshot: changed, deleted and added files."""
    (target / "a.txt").write_text("edited after the backup")
    (target / "sub" / "b.txt").unlink()
    (target / "sub" / "new.txt").write_text("added after the backup")


def test_overwrite_restore_then_undo_gives_the_target_back(vault_repo: Any, fs: Any,
                                                           tmp_path: Path) -> None:
    src = tmp_path / "app"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("original a")
    (src / "sub" / "b.txt").write_text("original b")
    fs.write_random(src / "sub" / "c.bin", 300_000, seed=9)
    snapshot_id = vault_repo.backup(src)["snapshot_id"]
    _drift(src)
    before = fs.tree_meta(src)
    before_bytes = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}

    done = vault_repo.json("restore", "--yes", f"{snapshot_id[:8]}:{src}", "--target", src,
                           "--mode", "overwrite")
    assert done.code == 0, done.last
    assert (src / "a.txt").read_text() == "original a"
    assert not (src / "sub" / "new.txt").exists()
    job_id = done.summary["job_id"]
    assert done.summary["undo"] == f"vault restore undo {job_id}"
    copies = [s for s in vault_repo.query("snapshots").summary["snapshots"]
              if "pre-restore" in s["tags"]]
    assert len(copies) == 1 and f"restore:{job_id}" in copies[0]["tags"]

    undone = vault_repo.json("restore", "undo", job_id)
    assert undone.code == 0, undone.last
    assert fs.tree_meta(src) == before
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before_bytes
    [event] = vault_repo.events("RestoreUndone")
    assert event["payload"]["job_id"] == job_id
    again = vault_repo.json("restore", "undo", job_id)
    assert again.code == 2 and "undone already" in again.last["message"]
    # A safety copy outlives any retention policy for 24 hours.
    forget = vault_repo.json("forget", "--keep-last", "1", "--dry-run")
    kept = {d["id"]: d["reasons"] for d in forget.summary["keep"]}
    assert "pre-restore safety copy" in kept[copies[0]["id"]]


def test_a_restore_into_a_new_target_keeps_no_safety_copy(vault_repo: Any, fs: Any,
                                                          tmp_path: Path) -> None:
    src = tmp_path / "app"
    fs.write_random(src / "x.bin", 10_000, seed=1)
    snapshot_id = vault_repo.backup(src)["snapshot_id"]
    done = vault_repo.json("restore", snapshot_id[:8], "--target", tmp_path / "new")
    assert done.code == 0 and done.summary["undo"] is None
    refused = vault_repo.json("restore", "undo", done.summary["job_id"])
    assert refused.code == 2 and "cannot be undone" in refused.last["message"]


@pytest.mark.slow
def test_a_restore_killed_midway_is_undone_exactly(vault_repo: Any, fs: Any,
                                                   tmp_path: Path) -> None:
    src = tmp_path / "big"
    for i in range(8):
        fs.write_random(src / f"f{i}.bin", 20 << 20, seed=100 + i)
    snapshot_id = vault_repo.backup(src)["snapshot_id"]
    for i in range(8):  # every file differs now: the restore overwrites them all
        fs.write_random(src / f"f{i}.bin", 20 << 20, seed=200 + i)
    (src / "extra.txt").write_text("only in the target")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    proc = vault_repo.popen("restore", "--yes", f"{snapshot_id[:8]}:{src}", "--target", src,
                            "--mode", "overwrite")
    deadline = time.monotonic() + 120
    job_id = None
    while job_id is None and time.monotonic() < deadline and proc.poll() is None:
        marks = vault_repo.events("RestoreUndoable")
        job_id = marks[-1]["payload"]["job_id"] if marks else None
        time.sleep(0.05)
    time.sleep(0.3)  # let it write a little
    proc.kill()
    proc.wait()
    assert job_id is not None, "the restore never reached its safety copy"
    undone = vault_repo.json("restore", "undo", job_id)
    assert undone.code == 0, undone.last
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    shutil.rmtree(src)


def test_database_overwrite_restore_then_undo(vault_repo: Any, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(100)])
    conn.close()
    snapshot_id = vault_repo.json("backup", f"sqlite://{db}").summary["snapshot_id"][:8]
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM t WHERE id < 10")
        conn.execute("UPDATE t SET v = 'changed' WHERE id BETWEEN 50 AND 59")
        conn.execute("INSERT INTO t VALUES (1000, 'added')")
    conn.close()

    def rows() -> list[tuple[int, str]]:
        with sqlite3.connect(db) as conn:
            found = conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()
        conn.close()
        return found

    before = rows()
    done = vault_repo.json("restore", "--yes", snapshot_id, "--mode", "overwrite")
    assert done.code == 0, done.last
    assert rows() == [(i, f"v{i}") for i in range(100)]
    assert done.summary["undo"]
    undone = vault_repo.json("restore", "undo", done.summary["job_id"])
    assert undone.code == 0, undone.last
    assert rows() == before
