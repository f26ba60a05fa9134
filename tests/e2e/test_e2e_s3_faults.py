"""The whole CLI against a real S3 server (moto) that misbehaves: a proxy in front of it
(tests/s3_fault_proxy.py) answers 503s, drops connections in the middle of an upload or a
download, delays listings, serves a truncated object or refuses every write. A backup
rides out what passes and fails clearly on what does not; nothing committed is lost and
nothing is silently corrupted."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from s3_fault_proxy import Faults, fault_proxy
from storage_servers import BUCKET, S3Server

MiB = 1 << 20
VAULT_BIN = Path(sys.executable).with_name("vault")
ALL_METHODS = ("PUT", "GET", "HEAD", "DELETE", "POST")


@dataclass(frozen=True)
class FaultyS3:
    """A fresh repository prefix on moto, reached through the fault proxy."""

    server: S3Server
    prefix: str
    env: dict[str, str]
    faults: Faults

    def sizes(self, under: str = "") -> dict[str, int]:
        """Key -> size under the prefix, asked of moto directly (never through the proxy)."""
        store = S3Store(BUCKET, prefix=self.prefix, endpoint=self.server.endpoint,
                        region="us-east-1", access_key_id=self.server.access_key,
                        secret_access_key=self.server.secret_key,
                        virtual_hosted_style_request=False,
                        client_options={"allow_http": True})
        return {str(meta["path"]): int(meta["size"])
                for chunk in obstore.list(store, under or None) for meta in chunk}

    def keys(self, under: str = "") -> list[str]:
        return sorted(self.sizes(under))


@pytest.fixture
def s3(moto: S3Server) -> Iterator[FaultyS3]:
    prefix = f"faults-{secrets.token_hex(4)}"
    with fault_proxy(moto.endpoint) as (endpoint, faults):
        env = {**moto.env(), "AWS_ENDPOINT_URL": endpoint,
               "VAULT_REPOSITORY": f"s3://{BUCKET}/{prefix}"}
        yield FaultyS3(moto, prefix, env, faults)


def _source(fs, src: Path) -> None:
    """~40 MB: three packs' worth of random data (multipart uploads) and some text."""
    for i in range(3):
        fs.write_random(src / "random" / f"r{i}.bin", 12 * MiB, seed=i)
    fs.write_compressible(src / "text" / "t.log", 4 * MiB, seed=7)
    (src / "small.txt").write_text("small\n")


def _verify_clean(vault, env: dict[str, str]) -> None:
    verified = vault.json("verify", "--read-data", env=env)
    assert verified.code == 0, (verified.last, verified.stderr)
    assert verified.summary["ok"] is True and verified.summary["problems"] == []


def test_backup_and_restore_ride_out_503s_and_dropped_connections(
        vault, fs, s3: FaultyS3, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _source(fs, src)
    vault.ok("init", env=s3.env)

    s3.faults.answer_503(12, methods=ALL_METHODS, every=3)
    s3.faults.drop_uploads(4, after=256 * 1024)  # 4 in a row: more than obstore retries
    done = vault.backup(src, env=s3.env)
    assert done["status"] == "completed" and done["problems"] == []
    bitten = dict(s3.faults.injected)
    assert s3.faults.errors_left == 0 and s3.faults.drops_left == 0, bitten
    assert bitten["dropped upload"] == 4, bitten

    s3.faults.recover()
    s3.faults.injected.clear()
    s3.faults.answer_503(8, methods=("GET", "HEAD"), every=3)
    s3.faults.cut_downloads(3, keep=100 * 1024)
    target = tmp_path / "out"
    vault.restore("latest", "--target", target, env=s3.env)
    fs.assert_same_tree(src, fs.restored_path(target, src))
    assert s3.faults.injected["cut download"] == 3, dict(s3.faults.injected)
    assert s3.faults.errors_left == 0, dict(s3.faults.injected)

    s3.faults.recover()
    _verify_clean(vault, s3.env)
    assert not s3.keys("locks")



def test_a_truncated_object_is_reported_never_restored_silently_and_nothing_is_lost(
        vault, fs, s3: FaultyS3, tmp_path: Path) -> None:
    """The server serves a pack cut short (HEAD, GET and ranged GET agree): restore says
    which files it could not write (exit 3) and writes no damaged byte; verify finds it
    (exit 1, SnapshotCorrupted); once the server is whole again `vault repair packs` takes
    every blob back and the snapshot restores byte-identical."""
    src = tmp_path / "src"
    _source(fs, src)
    vault.ok("init", env=s3.env)
    snapshot = vault.backup(src, env=s3.env)["snapshot_id"]
    before = s3.sizes("data")
    victim = max(before, key=lambda key: before[key]).rsplit("/", 1)[-1]
    s3.faults.truncate(victim, 1000)

    target = tmp_path / "out"
    reported = vault.json("restore", snapshot, "--target", target, env=s3.env)
    assert reported.code == 3, (reported.last, reported.stderr)
    problems = reported.summary["problems"]
    assert problems and all(f"data/{victim} is too short" in p["error"] for p in problems)
    restored = fs.restored_path(target, src)
    failed = {Path(p["path"]).relative_to(restored).as_posix() for p in problems}
    written = {p.relative_to(restored).as_posix() for p in restored.rglob("*") if p.is_file()}
    everything = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    assert not failed & written and failed | written == everything
    for name in written:  # what was written is whole; nothing damaged is left on disk
        assert (restored / name).read_bytes() == (src / name).read_bytes(), name

    verified = vault.json("verify", "--read-data", env=s3.env)
    assert verified.code == 1 and verified.summary["ok"] is False, verified.last
    assert any(victim[:12] in problem for problem in verified.summary["problems"])
    assert [e["payload"]["snapshot_id"] for e in vault.events("SnapshotCorrupted")] \
        == [snapshot]
    assert s3.sizes("data") == before  # the object itself was never touched

    s3.faults.recover()
    repaired = vault.json("repair", "packs", env=s3.env)
    assert repaired.code == 0 and repaired.summary["lost"] == [], repaired.last
    again = tmp_path / "again"
    vault.restore(snapshot, "--target", again, env=s3.env)
    fs.assert_same_tree(src, fs.restored_path(again, src))
    _verify_clean(vault, s3.env)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_delayed_listings_do_not_break_locks_or_backups(
        vault, vault_at, fs, s3: FaultyS3, tmp_path: Path) -> None:
    """Every listing takes a second. A backup is frozen (SIGSTOP) while it holds its lock: an
    exclusive `forget` is still refused (the slow listing shows it the backup's lock),
    while a second client's backup, shared, goes on; thawed, the frozen backup completes,
    and everything restores byte-identical."""
    sources = [tmp_path / "src0", tmp_path / "src1"]
    for n, src in enumerate(sources):
        fs.write_random(src / "r.bin", 6 * MiB, seed=10 + n)
        (src / "note.txt").write_text(f"source {n}\n")
    old = tmp_path / "old"
    fs.write_random(old / "gone.bin", MiB, seed=99)
    vault.ok("init", env=s3.env)
    doomed = vault.backup(old, env=s3.env)["snapshot_id"]
    other = vault_at(tmp_path / "other")

    s3.faults.delay_listings(1.0)
    frozen = subprocess.Popen([str(VAULT_BIN), "backup", str(sources[0])],
                              env={**vault.env.env, **s3.env}, cwd=vault.env.root,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: bool(s3.keys("locks")), "the backup never took its lock")
        frozen.send_signal(signal.SIGSTOP)
        refused = vault.json("forget", doomed, env=s3.env)
        assert refused.code == 1 and refused.last["error"] == "RepositoryLocked", refused.last
        assert f"pid {frozen.pid} (backup)" in refused.last["message"]
        second = other.backup(sources[1], env=s3.env)
        assert second["status"] == "completed"
    finally:
        frozen.send_signal(signal.SIGCONT)
    assert frozen.wait(timeout=300) == 0
    assert s3.faults.injected["delayed listing"] >= 3, dict(s3.faults.injected)
    assert not s3.keys("locks")

    s3.faults.recover()
    assert vault.json("forget", doomed, env=s3.env).code == 0
    for n, src in enumerate(sources):
        target = tmp_path / f"out{n}"
        vault.restore(f"latest:{src}", "--target", target, env=s3.env)
        fs.assert_same_tree(src, target, include_root=False)
    _verify_clean(vault, s3.env)


@pytest.mark.parametrize(("status", "refused", "kind", "says"), [
    (403, "data", "StorageError", "access denied (AccessDenied); check the credentials"),
    (503, "data", "TransientStorageError", "SlowDown"),
    (403, "index", "StorageError", "access denied (AccessDenied); check the credentials"),
])
def test_a_failure_that_does_not_pass_fails_clearly_and_a_rerun_completes(
        vault, fs, s3: FaultyS3, tmp_path: Path, status: int, refused: str, kind: str,
        says: str) -> None:
    """Every upload of packs (or of the index, after the packs are in) refused: a key that
    may not write, a server that stays overloaded. The backup fails with one line, exit 1
    and BackupFailed, commits no snapshot and leaves no lock; the repository verifies (the
    packs it did upload are unreferenced, not damage); once the server takes writes again
    the same backup completes."""
    src = tmp_path / "src"
    _source(fs, src)
    vault.ok("init", env=s3.env)
    s3.faults.refuse(status, ("PUT",), path_part=f"/{refused}/")

    failed = vault.run("backup", src, env=s3.env)
    assert failed.returncode == 1, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vault: error: "), failed.stderr
    assert says in lines[0] and f"cannot save {refused}/" in lines[0]
    assert s3.faults.injected["refused PUT"] >= 1
    [event] = vault.events("BackupFailed")
    assert event["payload"]["error_kind"] == kind and says in event["payload"]["message"]
    assert not s3.keys("snapshots") and not s3.keys("locks") and not s3.keys("index")
    assert bool(s3.keys("data")) == (refused == "index")
    assert vault.query("snapshots", env=s3.env).summary["snapshots"] == []
    checked = vault.json("verify", env=s3.env)
    assert checked.code == 0 and checked.summary["problems"] == [], checked.last
    assert len(checked.summary["unreferenced_packs"]) == len(s3.keys("data"))

    s3.faults.recover()
    done = vault.backup(src, env=s3.env)
    assert done["status"] == "completed" and done["problems"] == []
    _verify_clean(vault, s3.env)
    target = tmp_path / "out"
    vault.restore("latest", "--target", target, env=s3.env)
    fs.assert_same_tree(src, fs.restored_path(target, src))
