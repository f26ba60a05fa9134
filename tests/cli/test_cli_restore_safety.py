"""Restore safety: --yes / typed confirmation for destructive restores, the checks made
before anything is written (missing objects, versions), and the [restore] hooks."""

from __future__ import annotations

import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

VAULT_BIN = Path(sys.executable).with_name("vault")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.conf").write_text("port = 8080\n")
    (root / "data.txt").write_text("original data\n")
    return root


@pytest.fixture
def snapshot(vault_repo: Any, src: Path) -> str:
    return str(vault_repo.backup(src)["snapshot_id"])


def damage(src: Path) -> dict[str, str]:
    """Change the live tree so that restoring over it overwrites and deletes."""
    (src / "data.txt").write_text("changed since\n")
    (src / "new.txt").write_text("added since\n")
    return {p.name: p.read_text() for p in src.rglob("*") if p.is_file()}


def contents(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in root.rglob("*") if p.is_file()}


# --- confirmation ------------------------------------------------------------------------


def test_a_destructive_restore_in_a_script_needs_yes(vault_repo: Any, src: Path,
                                                     snapshot: str) -> None:
    before = damage(src)
    refused = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", src,
                              "--mode", "overwrite", input="")
    assert refused.code == 2, refused.last
    assert refused.last["error"] == "RestoreNotConfirmed"
    assert "--yes" in refused.last["message"]
    assert "overwrite 1, delete 1" in refused.last["message"]
    assert contents(src) == before  # nothing written
    assert not [s for s in vault_repo.query("snapshots").summary["snapshots"]
                if "pre-restore" in s["tags"]]  # not even a safety copy

    done = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", src,
                           "--mode", "overwrite", "--yes")
    assert done.code == 0, done.last
    assert contents(src) == {"app.conf": "port = 8080\n", "data.txt": "original data\n"}


def test_restores_that_change_nothing_existing_never_ask(vault_repo: Any, src: Path,
                                                         snapshot: str,
                                                         tmp_path: Path) -> None:
    damage(src)
    # into a new directory: nothing to overwrite
    fresh = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", tmp_path / "new")
    assert fresh.code == 0, fresh.last
    # merge keeps what differs by default: only creates
    merged = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", src,
                             "--mode", "merge")
    assert merged.code == 0, merged.last
    assert (src / "data.txt").read_text() == "changed since\n"
    # a dry run of a destructive plan says what it would do, and asks nothing
    dry = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", src,
                          "--mode", "overwrite", "--dry-run")
    assert dry.code == 0, dry.last
    assert dry.summary["plan"]["destructive"] is True
    assert (src / "new.txt").exists()


def test_a_database_overwrite_needs_yes(vault_repo: Any, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(20)])
    conn.close()
    snapshot_id = vault_repo.json("backup", f"sqlite://{db}").summary["snapshot_id"][:8]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE t SET v = 'changed' WHERE id = 3")
    conn.close()

    def rows() -> list[tuple[int, str]]:
        with sqlite3.connect(db) as conn:
            found = conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()
        conn.close()
        return found

    refused = vault_repo.json("restore", snapshot_id, "--mode", "overwrite", input="")
    assert refused.code == 2 and refused.last["error"] == "RestoreNotConfirmed"
    assert rows()[3] == (3, "changed")
    done = vault_repo.json("restore", snapshot_id, "--mode", "overwrite", "--yes")
    assert done.code == 0, done.last
    assert rows() == [(i, f"v{i}") for i in range(20)]


def run_on_a_terminal(vault: Any, args: list[str], answer: str) -> tuple[int, str]:
    """Run `vault ARGS` with a pseudo-terminal as stdin/stderr, answer its prompt."""
    main, side = pty.openpty()
    proc = subprocess.Popen([str(VAULT_BIN), *args], stdin=side, stdout=subprocess.PIPE,
                            stderr=side, env=vault.env.env, cwd=vault.env.root)
    os.close(side)
    seen = b""
    deadline = time.monotonic() + 120
    answered = False
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                seen += os.read(main, 4096)
            except OSError:
                break
        if not answered and b"to go on" in seen:
            os.write(main, answer.encode() + b"\r")
            answered = True
    proc.wait(timeout=60)
    with_rest = seen
    try:
        while select.select([main], [], [], 0.1)[0]:
            chunk = os.read(main, 4096)
            if not chunk:
                break
            with_rest += chunk
    except OSError:
        pass
    os.close(main)
    assert proc.stdout is not None
    proc.stdout.close()
    return proc.returncode, with_rest.decode(errors="replace")


def test_on_a_terminal_the_operator_types_the_targets_name(vault_repo: Any, src: Path,
                                                           snapshot: str) -> None:
    before = damage(src)
    args = ["restore", f"{snapshot[:8]}:{src}", "--target", str(src), "--mode", "overwrite"]
    code, seen = run_on_a_terminal(vault_repo, args, "nope")
    assert code == 2, seen
    assert "overwrite 1, delete 1" in seen and "not confirmed" in seen
    assert contents(src) == before

    code, seen = run_on_a_terminal(vault_repo, args, src.name)  # "app"
    assert code == 0, seen
    assert contents(src) == {"app.conf": "port = 8080\n", "data.txt": "original data\n"}


# --- checks before writing ---------------------------------------------------------------


def test_a_snapshot_missing_a_pack_is_refused_before_writing(vault_repo: Any, src: Path,
                                                            snapshot: str,
                                                            tmp_path: Path) -> None:
    before = damage(src)
    packs = sorted((vault_repo.env.repo / "data").rglob("*"))
    packs = [p for p in packs if p.is_file()]
    assert packs
    for pack in packs:  # every pack gone (data and trees): the index still names them
        pack.unlink()
    for target in (src, tmp_path / "fresh"):
        refused = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", target,
                                  "--mode", "overwrite", "--yes", input="")
        assert refused.code == 1, refused.last
        assert refused.last["error"] == "SnapshotIncomplete"
        assert "nothing was written" in refused.last["message"]
    assert contents(src) == before
    assert not (tmp_path / "fresh").exists()


def test_a_snapshot_from_an_older_vault_restores_with_a_warning_record(
        vault_repo: Any, src: Path, snapshot: str, tmp_path: Path) -> None:
    from vault.config.model import load_config
    from vault.runtime.app import Vault

    vault = Vault(load_config())
    try:
        repo = vault.repository()
        old = repo.find_snapshot(snapshot).model_copy(update={"vault_version": "0.0.3"})
        old_id = repo.save_snapshot(old)
    finally:
        vault.close()
    done = vault_repo.json("restore", old_id[:8], "--target", tmp_path / "out")
    assert done.code == 0, done.last
    assert done.summary["warnings"] == [{
        "kind": "older_version", "snapshot_id": old_id, "snapshot_version": 1,
        "format_version": 1, "snapshot_vault_version": "0.0.3",
        "vault_version": done.summary["warnings"][0]["vault_version"]}]
    human = vault_repo.run("restore", old_id[:8], "--target", tmp_path / "o4")
    assert human.returncode == 0, human.stderr
    assert "warning: older_version: snapshot" in human.stderr
    assert "written by vault 0.0.3" in human.stderr
    restored = tmp_path / "out" / str(src).lstrip("/")
    assert contents(restored) == {"app.conf": "port = 8080\n", "data.txt": "original data\n"}
    dry = vault_repo.json("restore", old_id[:8], "--target", tmp_path / "o2", "--dry-run")
    assert dry.summary["warnings"][0]["kind"] == "older_version"
    current = vault_repo.json("restore", snapshot[:8], "--target", tmp_path / "o3")
    assert current.summary["warnings"] == []


# --- hooks -------------------------------------------------------------------------------


WRITER = r"""
import os, sys, time
target, flag, paused, log = sys.argv[1:5]
n = 0
while not os.path.exists(os.path.join(os.path.dirname(log), "stop")):
    if os.path.exists(flag):
        if not os.path.exists(paused):
            open(paused, "w").close()  # acknowledge: no write until the flag is gone
            with open(log, "a") as f:
                f.write("paused\n")
        while os.path.exists(flag):
            time.sleep(0.02)
        os.unlink(paused)
        with open(target) as f:
            seen = f.read()
        with open(log, "a") as f:
            f.write("resumed, saw: " + seen.replace("\n", "|") + "\n")
    n += 1
    with open(target, "w") as f:
        f.write(f"written by the app {n}\n")
    time.sleep(0.02)
"""


def test_the_pre_hook_pauses_a_real_writer_during_the_restore(vault_repo: Any, src: Path,
                                                              snapshot: str,
                                                              tmp_path: Path) -> None:
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    flag, paused, log, env_log = ctl / "pause", ctl / "paused", ctl / "writer.log", \
        ctl / "env.log"
    config = tmp_path / "vault.toml"
    config.write_text(f"""
[restore]
pre_hook = "touch {flag} && while [ ! -f {paused} ]; do sleep 0.02; done && env | grep ^VAULT_RESTORE_ | sort >> {env_log}"
post_hook = "env | grep ^VAULT_RESTORE_ | sort >> {env_log} && rm {flag}"
hook_timeout = 60
""")  # noqa: E501
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src / "data.txt"), str(flag),
                               str(paused), str(log)])
    try:
        time.sleep(0.3)  # the app has been writing
        assert (src / "data.txt").read_text().startswith("written by the app")
        done = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", src,
                               "--mode", "overwrite", "--yes",
                               env={"VAULT_CONFIG": str(config)})
        assert done.code == 0, (done.last, done.stderr)
        deadline = time.monotonic() + 30
        while "resumed" not in (log.read_text() if log.exists() else "") \
                and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        (ctl / "stop").touch()
        writer.wait(timeout=30)
    lines = log.read_text().splitlines()
    # The writer was paused, and when it came back it found exactly the snapshot's data:
    # nothing it wrote raced the restore.
    assert lines[:2] == ["paused", "resumed, saw: original data|"], lines
    job_id = done.summary["job_id"]
    env_lines = env_log.read_text().splitlines()
    assert env_lines == [
        f"VAULT_RESTORE_JOB={job_id}", "VAULT_RESTORE_PHASE=pre",
        f"VAULT_RESTORE_SNAPSHOT={done.summary['snapshot_id']}",
        f"VAULT_RESTORE_TARGET={src}",
        f"VAULT_RESTORE_JOB={job_id}", "VAULT_RESTORE_PHASE=post",
        f"VAULT_RESTORE_SNAPSHOT={done.summary['snapshot_id']}",
        "VAULT_RESTORE_STATUS=completed", f"VAULT_RESTORE_TARGET={src}"]
    ran = [e["payload"] for e in vault_repo.events("RestoreHookRan")]
    assert [(r["phase"], r["exit_code"], r["timed_out"], r["job_id"]) for r in ran] == [
        ("pre", 0, False, job_id), ("post", 0, False, job_id)]


def test_a_failing_pre_hook_aborts_before_anything_is_written(vault_repo: Any, src: Path,
                                                              snapshot: str,
                                                              tmp_path: Path) -> None:
    before = damage(src)
    post_ran = tmp_path / "post-ran"
    env = {"VAULT_RESTORE__PRE_HOOK": "echo app refuses to stop >&2; exit 3",
           "VAULT_RESTORE__POST_HOOK": f"echo $VAULT_RESTORE_STATUS > {post_ran}"}
    refused = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", src,
                              "--mode", "overwrite", "--yes", env=env, input="")
    assert refused.code == 1, refused.last
    assert refused.last["error"] == "PreHookFailed"
    assert "exited with status 3: app refuses to stop" in refused.last["message"]
    assert contents(src) == before
    assert post_ran.read_text() == "failed\n"  # the writers are let back in anyway
    assert not [s for s in vault_repo.query("snapshots").summary["snapshots"]
                if "pre-restore" in s["tags"]]
    ran = [e["payload"] for e in vault_repo.events("RestoreHookRan")]
    assert [(r["phase"], r["exit_code"]) for r in ran] == [("pre", 3), ("post", 0)]
    assert "app refuses to stop" in ran[0]["output"]


def test_a_pre_hook_that_hangs_is_killed_and_aborts(vault_repo: Any, src: Path,
                                                    snapshot: str) -> None:
    before = damage(src)
    env = {"VAULT_RESTORE__PRE_HOOK": "sleep 60", "VAULT_RESTORE__HOOK_TIMEOUT": "0.5"}
    started = time.monotonic()
    refused = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", src,
                              "--mode", "overwrite", "--yes", env=env, input="")
    print(f"timed-out pre_hook: restore refused after {time.monotonic() - started:.1f}s")
    assert refused.code == 1 and refused.last["error"] == "PreHookFailed"
    assert "timed out" in refused.last["message"]
    assert contents(src) == before
    ran = [e["payload"] for e in vault_repo.events("RestoreHookRan")]
    assert [(r["phase"], r["exit_code"], r["timed_out"]) for r in ran] == [("pre", None, True)]


def test_a_failing_post_hook_is_a_warning(vault_repo: Any, src: Path, snapshot: str) -> None:
    damage(src)
    env = {"VAULT_RESTORE__POST_HOOK": "exit 7"}
    done = vault_repo.json("restore", f"{snapshot[:8]}:{src}", "--target", src,
                           "--mode", "overwrite", "--yes", env=env)
    assert done.code == 0, done.last
    assert contents(src) == {"app.conf": "port = 8080\n", "data.txt": "original data\n"}
    assert done.summary["warnings"] == [{"kind": "post_hook_failed", "command": "exit 7",
                                         "exit_code": 7, "timed_out": False, "output": ""}]
    reported = vault_repo.events("RestoreReported")[-1]["payload"]
    assert any("post_hook_failed" in w for w in reported["warnings"])


def test_hooks_run_around_a_database_restore(vault_repo: Any, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(5)])
    conn.close()
    snapshot_id = vault_repo.json("backup", f"sqlite://{db}").summary["snapshot_id"][:8]
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM t WHERE id = 0")
    conn.close()
    seen = tmp_path / "seen"
    # The pre-hook counts the rows the target holds before the restore touches it.
    env = {"VAULT_RESTORE__PRE_HOOK":
           f"{sys.executable} -c \"import sqlite3; print(sqlite3.connect('{db}')"
           f".execute('select count(*) from t').fetchone()[0])\" > {seen}",
           "VAULT_RESTORE__POST_HOOK": "false"}
    done = vault_repo.json("restore", snapshot_id, "--mode", "merge", env=env)
    assert done.code == 0, done.last
    assert seen.read_text() == "4\n"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, v FROM t ORDER BY id").fetchall() == [
            (i, f"v{i}") for i in range(5)]
    conn.close()
    assert [w["kind"] for w in done.summary["warnings"]] == ["post_hook_failed"]
    refused = vault_repo.json("restore", snapshot_id, "--mode", "merge",
                              env={"VAULT_RESTORE__PRE_HOOK": "false"}, input="")
    assert refused.code == 1 and refused.last["error"] == "PreHookFailed"
