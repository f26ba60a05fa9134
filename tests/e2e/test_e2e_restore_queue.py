"""Queued restores (`vault restore --queue`) with modes, conflict policies and database
snapshots, run by a real `vault worker`; destructive ones need --yes at enqueue time."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def worker(vault_repo: Any, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    proc = vault_repo.popen("worker", "--retry-delay", "0.5", stderr=log)
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def follow(vault: Any, job_id: str, tmp_path: Path) -> dict[str, Any]:
    result = vault.json("jobs", "follow", job_id, timeout=240)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert result.code in (0, 1), (result.last, result.stderr, log)
    return dict(result.summary)


def rows(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    conn.close()
    return found


def test_queued_file_and_database_restores_with_modes(vault_repo: Any, worker: Any,
                                                       tmp_path: Path) -> None:
    src = tmp_path / "app"
    src.mkdir()
    (src / "a.txt").write_text("a from the snapshot\n")
    (src / "b.txt").write_text("b from the snapshot\n")
    files_snap = vault_repo.backup(src)["snapshot_id"][:8]
    (src / "a.txt").write_text("a edited\n")
    (src / "extra.txt").write_text("extra\n")

    # overwrite without --yes: refused at enqueue time, nothing queued
    refused = vault_repo.json("restore", f"{files_snap}:{src}", "-t", src, "--mode",
                              "overwrite", "--queue", input="")
    assert refused.code == 2 and refused.last["error"] == "RestoreNotConfirmed", refused.last
    assert [j for j in vault_repo.query("jobs").summary["jobs"] if j["kind"] == "restore"] == []

    # merge + rename creates only: no --yes needed; the worker carries it out
    queued = vault_repo.json("restore", f"{files_snap}:{src}", "-t", src, "--mode", "merge",
                             "--on-conflict", "rename", "--queue")
    assert queued.code == 0, queued.last
    done = follow(vault_repo, queued.summary["job_id"], tmp_path)
    assert done["event"] == "RestoreCompleted", done
    renamed = f"a.txt.restored-{files_snap}"
    assert {p.name: p.read_text() for p in src.iterdir()} == {
        "a.txt": "a edited\n", renamed: "a from the snapshot\n",
        "b.txt": "b from the snapshot\n", "extra.txt": "extra\n"}

    # overwrite with --yes: the snapshot's selection exactly
    queued = vault_repo.json("restore", f"{files_snap}:{src}", "-t", src, "--mode",
                             "overwrite", "--queue", "--yes")
    assert queued.code == 0, queued.last
    done = follow(vault_repo, queued.summary["job_id"], tmp_path)
    assert done["event"] == "RestoreCompleted", done
    assert {p.name: p.read_text() for p in src.iterdir()} == {
        "a.txt": "a from the snapshot\n", "b.txt": "b from the snapshot\n"}

    # a SQLite snapshot, queued: merge into the live file, then overwrite with --yes
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(30)])
    conn.close()
    db_snap = vault_repo.json("backup", f"sqlite://{db}").summary["snapshot_id"][:8]
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM t WHERE id < 5")
        conn.execute("UPDATE t SET v = 'edited' WHERE id = 10")
        conn.execute("INSERT INTO t VALUES (99, 'added')")
    conn.close()
    queued = vault_repo.json("restore", db_snap, "--mode", "merge", "--queue")
    assert queued.code == 0, queued.last
    done = follow(vault_repo, queued.summary["job_id"], tmp_path)
    assert done["event"] == "RestoreCompleted", done
    expected = [(i, "edited" if i == 10 else f"v{i}") for i in range(30)] + [(99, "added")]
    assert rows(db) == expected

    refused = vault_repo.json("restore", db_snap, "--mode", "overwrite", "--queue", input="")
    assert refused.code == 2 and refused.last["error"] == "RestoreNotConfirmed", refused.last
    queued = vault_repo.json("restore", db_snap, "--mode", "overwrite", "--queue", "--yes")
    assert queued.code == 0, queued.last
    done = follow(vault_repo, queued.summary["job_id"], tmp_path)
    assert done["event"] == "RestoreCompleted", done
    assert rows(db) == [(i, f"v{i}") for i in range(30)]

    # `vault restore undo JOB --queue`: the worker puts the live file back as it was
    undo = vault_repo.json("restore", "undo", queued.summary["job_id"], "--queue")
    assert undo.code == 0, undo.last
    done = follow(vault_repo, undo.summary["job_id"], tmp_path)
    assert done["event"] == "RestoreCompleted", done
    assert rows(db) == expected
    nothing = vault_repo.json("restore", "undo", undo.summary["job_id"], "--queue")
    assert nothing.code != 0 and "\n" not in nothing.last["message"]


def test_a_job_queued_without_yes_refuses_a_plan_that_became_destructive(
        vault_repo: Any, tmp_path: Path) -> None:
    """Queued while the target was empty (nothing to confirm); by the time the worker runs
    it the target holds different files: the worker refuses, nothing is written."""
    from vault.jobs.commands import JobCommand
    from vault.jobs.tasks import execute

    src = tmp_path / "app"
    src.mkdir()
    (src / "f.txt").write_text("snapshot\n")
    snap = vault_repo.backup(src)["snapshot_id"][:8]
    target = tmp_path / "target"
    queued = vault_repo.json("restore", f"{snap}:{src}", "-t", target, "--mode", "overwrite",
                             "--queue")
    assert queued.code == 0, queued.last
    job_id = queued.summary["job_id"]
    target.mkdir()
    (target / "f.txt").write_text("written meanwhile\n")
    (target / "other.txt").write_text("also\n")

    from vault.config.model import load_config
    from vault.jobs.commands import RestoreArgs

    command = JobCommand(job_id=job_id, repository=str(vault_repo.env.repo), args=RestoreArgs(
        snapshot_ref=f"{snap}:{src}", target=str(target), mode="overwrite"))
    assert execute(command, load_config()) == "failed"
    assert (target / "f.txt").read_text() == "written meanwhile\n"
    assert (target / "other.txt").read_text() == "also\n"
    failed = vault_repo.events("RestoreFailed")[-1]["payload"]
    assert failed["error_kind"] == "RestoreNotConfirmed"
    assert "queued without --yes" in failed["message"]
