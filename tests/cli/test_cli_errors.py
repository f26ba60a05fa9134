"""Errors: one line on stderr (no traceback), the documented exit code, a journal event,
and nothing in the repository lost or half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.txt").write_text("beta")
    return root


@pytest.fixture
def backed_up(vault_repo, src: Path) -> str:
    return vault_repo.backup(src)["snapshot_id"]


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    err = done.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("vault: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def last_command_failure(vault) -> dict:
    events = vault.events("CommandFailed")
    assert events, "the failure was not journaled"
    return events[-1]["payload"]


WRONG_PASSPHRASE_COMMANDS = [
    ("snapshots",),
    ("backup", "{src}"),
    ("restore", "latest", "--target", "{tmp}/out"),
    ("verify", "--read-data"),
    ("ls", "latest"),
    ("forget", "latest"),
    ("key", "list"),
    ("stats",),
]


def test_wrong_passphrase(vault_repo, fs, src: Path, backed_up: str, tmp_path: Path) -> None:
    before = fs.dir_digest(vault_repo.env.repo)
    for args in WRONG_PASSPHRASE_COMMANDS:
        argv = [a.format(src=src, tmp=tmp_path) for a in args]
        done = vault_repo.run(*argv, env={"VAULT_PASSWORD": "not the passphrase"})
        assert done.returncode == 1, argv
        one_line_error(done, "wrong passphrase", str(vault_repo.env.repo))
        assert done.stdout == ""
    failures = [e["payload"] for e in vault_repo.events("CommandFailed")]
    assert [f["command"] for f in failures] == [
        "snapshots", "backup", "restore", "verify", "ls", "forget", "key list", "stats"]
    assert {f["error_kind"] for f in failures} == {"WrongPassphrase"}
    assert fs.dir_digest(vault_repo.env.repo) == before
    assert not (tmp_path / "out").exists()


def test_wrong_passphrase_with_json(vault_repo, backed_up: str) -> None:
    result = vault_repo.json("snapshots", env={"VAULT_PASSWORD": "nope"})
    assert result.code == 1
    assert result.last == {"type": "error", "command": "snapshots",
                           "error": "WrongPassphrase", "message": result.last["message"],
                           "exit_code": 1}
    assert "wrong passphrase" in result.last["message"]


def test_missing_repository(vault, tmp_path: Path) -> None:
    missing = tmp_path / "no-repo-here"
    for argv in (["snapshots"], ["backup", str(tmp_path)], ["verify"]):
        done = vault.run(*argv, env={"VAULT_REPOSITORY": str(missing)})
        assert done.returncode == 1, done.stderr
        one_line_error(done, "no vault repository", "vault init", str(missing))
        assert last_command_failure(vault)["error_kind"] == "RepositoryNotFound"
    assert not missing.exists()


def test_backup_of_a_nonexistent_path_is_a_usage_error(vault_repo, run_vault, fs,
                                                       tmp_path: Path) -> None:
    before = fs.dir_digest(vault_repo.env.repo)
    done = run_vault("backup", tmp_path / "nope", input="")
    assert done.returncode == 2
    one_line_error(done, "no such file or directory", str(tmp_path / "nope"))
    assert last_command_failure(vault_repo)["error_kind"] == "UsageError"
    assert fs.dir_digest(vault_repo.env.repo) == before


def test_one_missing_path_among_several_makes_a_partial_snapshot(vault_repo, src: Path,
                                                                 tmp_path: Path) -> None:
    summary = vault_repo.backup(src, tmp_path / "gone", expect=3)
    assert summary["status"] == "partial"
    assert [p["path"] for p in summary["problems"]] == [str(tmp_path / "gone")]
    assert summary["files_new"] == 2


def test_no_passphrase_anywhere(vault_repo, backed_up: str) -> None:
    done = vault_repo.run("snapshots", env={"VAULT_PASSWORD": None})
    assert done.returncode == 2
    one_line_error(done, "passphrase", "VAULT_PASSWORD")


def test_password_file_readable_by_others_is_refused(vault_repo, backed_up: str,
                                                     tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(vault_repo.env.password)
    pw.chmod(0o644)
    done = vault_repo.run("--password-file", pw, "snapshots", env={"VAULT_PASSWORD": None})
    assert done.returncode == 2
    one_line_error(done, "chmod 600")
    pw.chmod(0o600)
    assert vault_repo.run("--password-file", pw, "snapshots",
                          env={"VAULT_PASSWORD": None}).returncode == 0


def test_init_over_an_existing_repository(vault_repo, fs, backed_up: str) -> None:
    before = fs.dir_digest(vault_repo.env.repo)
    done = vault_repo.run("init")
    assert done.returncode == 1
    one_line_error(done, "already exists")
    assert fs.dir_digest(vault_repo.env.repo) == before
    assert last_command_failure(vault_repo)["error_kind"] == "RepositoryExists"


BAD_REFERENCES = [
    (("restore", "deadbeef", "--target", "out"), 1, "no snapshot matches 'deadbeef'"),
    (("restore", "latest:no/such/dir", "--target", "out"), 1, "no snapshot matches"),
    (("dump", "latest", "/no/such/file"), 2, "no such file in snapshot"),
    (("ls", "abc"), 1, "no snapshot matches 'abc'"),
    (("snapshots", "--since", "yesterday"), 2, "expected an ISO date"),
    (("backup", "{src}", "--exclude-larger-than", "lots"), 2, "--exclude-larger-than"),
    (("key", "remove", "ffff"), 2, "no single key matches"),
    (("verify", "--read-data-subset", "200%"), 2, "percentage must be in"),
]


def test_bad_references_and_values(vault_repo, src: Path, backed_up: str) -> None:
    for args, code, needle in BAD_REFERENCES:
        argv = [a.format(src=src) for a in args]
        done = vault_repo.run(*argv)
        assert done.returncode == code, (argv, done.stderr)
        one_line_error(done, needle)


def test_click_usage_errors_exit_2(vault_repo, fs) -> None:
    done = vault_repo.run("backup", "--no-such-option", "x")
    assert done.returncode == 2
    assert "No such option" in done.stderr and "Traceback" not in done.stderr
    missing_target = vault_repo.run("restore", "latest")
    assert missing_target.returncode == 2
    done = vault_repo.run("--json", "restore", "latest", "--overwrite", "sometimes")
    assert done.returncode == 2
    last = fs.parse_json_lines(done.stdout)[-1]
    assert (last["type"], last["error"], last["exit_code"]) == ("error", "UsageError", 2)


def test_command_level_json_flag_covers_usage_errors(vault_repo, fs) -> None:
    done = vault_repo.run("restore", "latest", "--overwrite", "sometimes", "--json")
    assert done.returncode == 2
    assert fs.parse_json_lines(done.stdout)[-1]["type"] == "error"


HOLDER = """
import sys, time
from vault.storage.local import LocalStorage
from vault.repository.lock import RepositoryLock
lock = RepositoryLock.acquire(LocalStorage(sys.argv[1]), exclusive=True, operation="prune")
print("locked", flush=True)
time.sleep(600)
"""


def test_a_live_exclusive_lock_refuses_a_backup(vault_repo, fs, src: Path,
                                               backed_up: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(vault_repo.env.repo)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        done = vault_repo.run("backup", src)
        assert done.returncode == 1
        one_line_error(done, "is locked by", f"pid {holder.pid}", "(prune)")
        failed = vault_repo.events("BackupFailed")[-1]["payload"]
        assert failed["error_kind"] == "RepositoryLocked"
        assert len(vault_repo.query("snapshots").summary["snapshots"]) == 1
    finally:
        holder.kill()
        holder.wait()
    assert vault_repo.backup(src)["status"] == "completed"  # its lock is stale now


def test_ctrl_c_during_backup_exits_130_and_loses_nothing(vault_repo, fs, src: Path,
                                                          backed_up: str,
                                                          tmp_path: Path) -> None:
    big = tmp_path / "big"
    for i in range(4):  # ~256 MiB: the interrupt lands long before the backup ends
        fs.write_random(big / f"{i}.bin", 64 << 20, seed=i)
    # As from a terminal: a shell that started *us* in the background (`cmd &`) leaves
    # SIGINT ignored, which Python (rightly) keeps; Ctrl-C needs the default disposition.
    proc = vault_repo.popen("backup", big, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while not any((vault_repo.env.repo / "locks").iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    failed = vault_repo.events("BackupFailed")[-1]["payload"]
    assert failed["error_kind"] == "Interrupted"
    assert vault_repo.json("verify", "--read-data").code == 0
    assert not list((vault_repo.env.repo / "locks").iterdir()), "the lock was not released"
    out = tmp_path / "out"
    vault_repo.restore(f"{backed_up[:8]}:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)
