"""Restores work in the incident they exist for, and nothing surprising happens silently.

The repository and the state directory live on small tmpfs mounts made for the test
(skipped where mounting is not permitted) and are filled to the last byte; the journal
spool goes to a private directory of the test (`XDG_RUNTIME_DIR`).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MiB = 1 << 20


def _mount(mnt: Path, options: str) -> Path:
    mnt.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    return mnt


@pytest.fixture
def mounts() -> Iterator[Callable[[Path, str], Path]]:
    made: list[Path] = []

    def mount(mnt: Path, options: str) -> Path:
        made.append(_mount(mnt, options))
        return mnt

    yield mount
    for mnt in reversed(made):
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> None:
    """Write until the file system has not one byte left."""
    with open(mnt / "filler", "ab", buffering=0) as f:
        for size in (MiB, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                continue
    assert os.statvfs(mnt).f_bavail == 0


@pytest.fixture
def incident_vault(vault, mounts, tmp_path: Path):
    """A vault whose repository (`.repo_mnt`) and state directory (`.state_mnt`) are on
    their own tmpfs mounts; the spool directory is the test's own."""
    repo_mnt = mounts(tmp_path / "repo-mnt", "size=200m")
    state_mnt = mounts(vault.env.home / "state", "size=2m")
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    repo = repo_mnt / "repo"
    env = {**vault.env.env, "VAULT_REPOSITORY": str(repo), "XDG_RUNTIME_DIR": str(run)}
    cli = type(vault)(dataclasses.replace(vault.env, repo=repo, env=env))
    cli.repo_mnt, cli.state_mnt, cli.spool_dir = repo_mnt, state_mnt, run / "vault"
    cli.init()
    return cli


def _source(fs, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    fs.write_random(src / "data.bin", 3 * MiB, seed=7)
    (src / "notes.txt").write_text("what the incident must not take away\n")
    (src / "sub").mkdir()
    (src / "sub" / "link").symlink_to("../notes.txt")
    return src


def test_restore_from_a_full_repository_with_a_full_state_directory(
        incident_vault, fs, tmp_path: Path) -> None:
    vault = incident_vault
    src = _source(fs, tmp_path)
    snapshot_id = vault.backup(src)["snapshot_id"]
    _fill(vault.repo_mnt)
    _fill(vault.state_mnt)
    repo_before = fs.dir_digest(vault.env.repo)

    out = tmp_path / "out"
    done = vault.run("restore", f"{snapshot_id[:8]}:{src}", "--target", out)
    assert done.returncode == 3, done.stderr  # restored; the journal is behind: a warning
    fs.assert_same_tree(src, out, include_root=False)
    assert "restore runs without a repository lock" in done.stderr
    assert "could not write the journal" in done.stderr
    assert "Traceback" not in done.stderr

    for args in (("snapshots",), ("jobs",), ("ls", snapshot_id[:8], str(src)),
                 ("dump", snapshot_id[:8], str(src / "notes.txt"))):
        assert vault.run(*args).returncode == 0, args
    assert vault.run("dump", snapshot_id[:8], str(src / "notes.txt")).stdout == \
        (src / "notes.txt").read_text()
    assert fs.dir_digest(vault.env.repo) == repo_before  # no lock object, no index written
    assert len(list(vault.spool_dir.iterdir())) == 1

    # Room again in the state directory: the next command appends the spooled events,
    # chain intact. The repository is still full: verify reads it all without a lock.
    (vault.state_mnt / "filler").unlink()
    verify = vault.run("verify", "--read-data")
    assert verify.returncode == 0, verify.stderr
    assert "ok: 1 snapshots" in verify.stdout
    assert fs.dir_digest(vault.env.repo) == repo_before
    check = vault.run("journal", "verify")
    assert check.returncode == 0, check.stdout + check.stderr
    assert list(vault.spool_dir.iterdir()) == []
    replayed = vault.events("JournalSpoolReplayed")
    assert len(replayed) == 1 and replayed[0]["payload"]["events"] > 0
    assert all("disk" in e["payload"]["reason"] for e in replayed)
    completed = vault.events("RestoreCompleted", "VerifyCompleted")
    assert [e["type"] for e in completed] == ["RestoreCompleted", "VerifyCompleted"]
    assert completed[0]["payload"]["files_restored"] == 2
    skipped = vault.events("LockSkipped")
    assert [e["payload"]["operation"] for e in skipped] == ["restore", "verify"]
    assert "not enough space" in skipped[0]["payload"]["reason"]
    jobs = vault.query("jobs").summary["jobs"]
    assert {j["kind"]: j["status"] for j in jobs}["restore"] == "completed"


def test_destructive_restore_from_a_full_repository_needs_no_safety_copy(
        incident_vault, fs, tmp_path: Path) -> None:
    """The safety copy of what a destructive restore overwrites would go into the full
    repository: refused before anything changes, unless --no-safety-copy."""
    vault = incident_vault
    src = _source(fs, tmp_path)
    vault.backup(src)
    target = tmp_path / "live"
    vault.restore(f"latest:{src}", "--target", target)
    (target / "notes.txt").write_text("damaged in the incident")
    _fill(vault.repo_mnt)
    repo_before = fs.dir_digest(vault.env.repo)

    refused = vault.run("restore", f"latest:{src}", "--target", target, "--mode",
                        "overwrite", "--yes")
    assert refused.returncode == 2, refused.stderr
    assert "--no-safety-copy" in refused.stderr and "nothing was changed" in refused.stderr
    assert (target / "notes.txt").read_text() == "damaged in the incident"
    assert vault.events("RestoreFailed")[-1]["payload"]["error_kind"] == \
        "SafetyCopyImpossible"

    done = vault.run("restore", f"latest:{src}", "--target", target, "--mode", "overwrite",
                     "--yes", "--no-safety-copy")
    assert done.returncode == 0, done.stderr
    fs.assert_same_tree(src, target, include_root=False)
    assert fs.dir_digest(vault.env.repo) == repo_before


def test_read_only_repository_restores_but_respects_an_exclusive_lock(
        incident_vault, fs, tmp_path: Path) -> None:
    from vault.repository.lock import LockInfo, _new_lock

    vault = incident_vault
    src = _source(fs, tmp_path)
    vault.backup(src)
    # A live exclusive lock (this test's own process: alive, same host), then read-only.
    held: LockInfo = dataclasses.replace(_new_lock(True, "prune", 300))
    (vault.env.repo / "locks" / held.lock_id).write_bytes(held.to_json())
    subprocess.run(["mount", "-o", "remount,ro", str(vault.repo_mnt)], check=True)
    refused = vault.run("restore", f"latest:{src}", "--target", tmp_path / "refused")
    assert refused.returncode == 1
    assert "is locked by" in refused.stderr and "(prune)" in refused.stderr
    assert not (tmp_path / "refused").exists()

    subprocess.run(["mount", "-o", "remount,rw", str(vault.repo_mnt)], check=True)
    (vault.env.repo / "locks" / held.lock_id).unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(vault.repo_mnt)], check=True)
    out = tmp_path / "out"
    done = vault.run("restore", f"latest:{src}", "--target", out)
    assert done.returncode == 0, done.stderr
    fs.assert_same_tree(src, out, include_root=False)
    assert "without a repository lock" in done.stderr
    assert vault.run("verify").returncode == 0


def test_backup_saved_while_the_journal_fills_up(incident_vault, fs,
                                                 tmp_path: Path) -> None:
    """The journal's disk fills while a backup reads (from a FIFO the test feeds): the
    snapshot is saved and reported, exit 3 with the journal error as a warning, no
    traceback; afterwards the job is `completed`, and a retry of it adds no snapshot."""
    vault = incident_vault
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    payload = os.urandom(2 * MiB)
    proc = vault.popen("backup", "--read-special", fifo, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    with open(fifo, "wb") as writer:  # returns once vault reads: BackupStarted is in
        writer.write(payload[: MiB])
        _fill(vault.state_mnt)
        time.sleep(1.5)  # a progress flush or two fail meanwhile
        writer.write(payload[MiB:])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert b"saved" in out and b"could not write the journal" in err
    assert b"Traceback" not in err
    snapshots = vault.query("snapshots").summary["snapshots"]
    assert len(snapshots) == 1
    dumped = vault.run("dump", snapshots[0]["id"][:8], str(fifo), binary=True)
    assert dumped.stdout == payload

    (vault.state_mnt / "filler").unlink()
    assert vault.run("journal", "verify").returncode == 0
    [job] = vault.query("jobs").summary["jobs"]
    assert (job["kind"], job["status"], job["snapshot_id"]) == (
        "backup", "completed", snapshots[0]["id"])

    # The job retried (as the worker retries a job that failed): its snapshot is found.
    retried = _run_backup_job(vault, job["job_id"], fifo)
    assert retried == snapshots[0]["id"]
    assert len(vault.query("snapshots").summary["snapshots"]) == 1


def _run_backup_job(vault, job_id: str, path: Path) -> str:
    """run_backup in this process with the job id of an earlier attempt."""
    from vault.config.model import load_config
    from vault.foundation.progress import NullReporter
    from vault.operations.backup import BackupRequest, run_backup
    from vault.runtime.app import Vault

    saved = {k: os.environ.get(k) for k in vault.env.env}
    os.environ.update(vault.env.env)
    try:
        app = Vault(load_config(None))
        try:
            outcome = run_backup(app, BackupRequest(paths=[str(path)], read_special=True),
                                 NullReporter(), job_id=job_id)
        finally:
            app.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert outcome.snapshot is not None
    return outcome.snapshot.id


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_special_files_given_as_paths_are_refused(vault_repo, tmp_path: Path,
                                                   kind: str) -> None:
    vault = vault_repo
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    else:
        path = Path("/dev/null")
    done = vault.run("backup", path)
    assert done.returncode == 2
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vault: error: "), err
    assert f"{path} is a " in err and "refused" in err
    assert vault.query("snapshots").summary["snapshots"] == []
    assert vault.events("CommandFailed")[-1]["payload"]["error_kind"] == "SpecialFileSource"


def test_read_special_stores_what_a_fifo_yields(vault_repo, tmp_path: Path) -> None:
    vault = vault_repo
    fifo = tmp_path / "dump.sql"
    os.mkfifo(fifo)
    payload = os.urandom(3 * MiB + 17)
    proc = vault.popen("backup", "--read-special", fifo, "--json", stdout=subprocess.PIPE)
    with open(fifo, "wb") as writer:  # opens once vault reads
        writer.write(payload)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    snapshot = vault.query("snapshots").summary["snapshots"][0]
    dumped = vault.run("dump", snapshot["id"][:8], str(fifo), binary=True)
    assert dumped.stdout == payload
    restored = tmp_path / "out"
    vault.restore(f"latest:{tmp_path}", "--target", restored)
    assert (restored / "dump.sql").read_bytes() == payload
    assert b'"bytes_raw": ' + str(len(payload)).encode() in out


def test_file_growing_while_read_makes_a_partial_snapshot(vault_repo, fs,
                                                          tmp_path: Path) -> None:
    vault = vault_repo
    src = tmp_path / "src"
    grow = fs.write_random(src / "growing.log", 24 * MiB, seed=3)
    (src / "still.txt").write_text("unchanged")
    writer = subprocess.Popen(
        ["sh", "-c", f"while :; do head -c 4096 /dev/urandom >> '{grow}'; done"])
    try:
        time.sleep(0.2)
        summary = vault.backup(src, expect=3)
    finally:
        writer.kill()
        writer.wait()
    assert summary["status"] == "partial"
    [problem] = summary["problems"]
    assert problem["path"] == str(grow)
    assert "changed while it was read" in problem["error"]
    completed = vault.events("BackupCompleted")[-1]["payload"]
    assert completed["status"] == "partial"
    # Not trusted by the files cache: the next backup reads it again, and it is whole.
    summary = vault.backup(src)
    assert summary["status"] == "completed" and summary["files_unmodified"] == 1
    assert summary["bytes_read"] == grow.stat().st_size
    out = tmp_path / "out"
    vault.restore(f"latest:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)


def test_killed_inline_job_is_marked_interrupted(vault_repo, tmp_path: Path) -> None:
    vault = vault_repo
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    proc = vault.popen("backup", "--read-special", fifo)
    deadline = time.monotonic() + 60
    while not vault.events("BackupStarted"):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    [running] = vault.query("jobs").summary["jobs"]
    assert running["status"] == "running"
    assert running["worker"] == f"{socket.gethostname()}:{proc.pid}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    [job] = vault.query("jobs").summary["jobs"]
    assert (job["job_id"], job["status"]) == (running["job_id"], "interrupted")
    [event] = vault.events("JobInterrupted")
    assert event["payload"]["will_retry"] is False
    assert str(proc.pid) in event["payload"]["reason"]
    # Looked at again: marked once only.
    vault.query("jobs")
    assert len(vault.events("JobInterrupted")) == 1
