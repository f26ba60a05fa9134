"""kill -9 during a backup to S3 (moto) and to SFTP (OpenSSH's sshd), at named points of
the write order packs -> index -> snapshot (`VAULT_FAILPOINTS`, as tests/e2e/test_e2e_kill.py
does locally): the repository stays consistent, the last complete snapshot restores
byte-identical, the dead backup's lock is stale at once on this host and expires by its
lease when it came from another host (never blocking a backup), and the next backup
cleans the debris (SFTP temp files of a save killed before its rename)."""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from s3_fault_proxy import fault_proxy
from storage_servers import BUCKET, S3Server, SshServer
from vault.foundation.processes import this_pid_namespace
from vault.repository.lock import LockInfo, is_stale

MiB = 1 << 20
VAULT_BIN = Path(sys.executable).with_name("vault")
#: small packs, so a few MiB of new data make several of them (several kill points)
SMALL_PACKS = {"VAULT_REPOSITORY__PACK_SIZE_MIB": "4"}

#: where each backup is killed, and whether it has committed its snapshot by then
KILLS = [
    ("saver:pack-written@1", False),
    ("saver:pack-written@3", False),
    ("backup:flushed", False),
    ("backup:snapshot-written", True),
]
#: SFTP only: between a save's temp file and its rename (the lock is the first save)
TEMP_KILL = ("sftp:temp-written@3", False)


@dataclass(frozen=True)
class Remote:
    name: str
    env: dict[str, str | None]
    #: lock id -> the lock object's bytes, read on the server's side
    lock_objects: Callable[[], dict[str, bytes]]
    #: temp files (debris of killed saves) in the repository, read on the server's side
    temp_files: Callable[[], list[str]]
    kills: list[tuple[str, bool]]


def _s3_remote(server: S3Server) -> Remote:
    prefix = f"kill-{secrets.token_hex(4)}"
    store = S3Store(BUCKET, prefix=prefix, endpoint=server.endpoint, region="us-east-1",
                    access_key_id=server.access_key, secret_access_key=server.secret_key,
                    virtual_hosted_style_request=False, client_options={"allow_http": True})

    def lock_objects() -> dict[str, bytes]:
        keys = [str(m["path"]) for chunk in obstore.list(store, "locks/") for m in chunk]
        return {key.rsplit("/", 1)[-1]: bytes(obstore.get(store, key).bytes())
                for key in keys}

    return Remote("s3", {**server.env(), "VAULT_REPOSITORY": f"s3://{BUCKET}/{prefix}"},
                  lock_objects, lambda: [], KILLS)


def _sftp_remote(server: SshServer, tmp_path: Path) -> Remote:
    repo = tmp_path / "remote" / "repo"
    config = tmp_path / "vault.toml"
    config.write_text(
        f'[repository]\nurl = "{server.url(repo)}"\n'
        f'[repository.sftp]\nknown_hosts = "{server.home / ".ssh" / "known_hosts"}"\n'
        f'identity_file = "{server.home / ".ssh" / "id_ed25519"}"\n')

    def lock_objects() -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in (repo / "locks").iterdir()
                if not path.name.startswith(".tmp-")}

    return Remote("sftp", {"VAULT_CONFIG": str(config), "VAULT_REPOSITORY": None,
                           "SSH_AUTH_SOCK": None},
                  lock_objects, lambda: sorted(map(str, repo.rglob(".tmp-*"))),
                  [*KILLS[:2], TEMP_KILL, *KILLS[2:]])


@pytest.fixture(params=["s3", "sftp"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    if request.param == "s3":
        return _s3_remote(request.getfixturevalue("moto"))
    return _sftp_remote(request.getfixturevalue("ssh_server"), tmp_path)


def _fill(fs, src: Path, generation: int) -> None:
    """~14 MB: 12 MB of random data (new every generation) and 2 MB of text."""
    for i in range(3):
        fs.write_random(src / "random" / f"r{i}.bin", 4 * MiB, seed=1000 * generation + i)
    if not (src / "text.log").exists():
        fs.write_compressible(src / "text.log", 2 * MiB, seed=5)


def _verify_ok(vault, env: dict[str, str | None], read_data: bool = False) -> dict:
    result = vault.json("verify", *(["--read-data"] if read_data else []), env=env)
    assert result.code == 0, (result.last, result.stderr)
    assert result.summary["ok"] is True and result.summary["problems"] == []
    return dict(result.summary)


def _snapshot_ids(vault, env: dict[str, str | None]) -> list[str]:
    return [s["id"] for s in vault.query("snapshots", env=env).summary["snapshots"]]


@pytest.mark.slow
def test_kill_9_during_a_remote_backup_at_each_step(vault, fs, remote: Remote,
                                                    tmp_path: Path) -> None:
    env = {**remote.env, **SMALL_PACKS}
    src = tmp_path / "src"
    _fill(fs, src, 0)
    vault.ok("init", env=env)
    expected = fs.tree_meta(src)
    complete = vault.backup(src, env=env)["snapshot_id"]

    for generation, (point, commits) in enumerate(remote.kills, start=1):
        _fill(fs, src, generation)  # new data, so the backup has packs to write
        candidate = fs.tree_meta(src)
        before = set(_snapshot_ids(vault, env))
        killed = vault.run("backup", src, "--force", env={**env, "VAULT_FAILPOINTS": point})
        assert killed.returncode == -9, (point, killed.stdout, killed.stderr)

        new = [sid for sid in _snapshot_ids(vault, env) if sid not in before]
        assert len(new) == (1 if commits else 0), (point, new)
        if commits:  # a committed snapshot is whole, though its job was never journaled
            complete, expected = new[0], candidate
        locks = vault.query("locks", env=env).summary["locks"]
        assert locks and all(lock["state"] == "stale" for lock in locks), (point, locks)
        summary = _verify_ok(vault, env)
        if point.startswith("saver:pack-written"):
            assert summary["unreferenced_packs"], (point, "the killed pack is not seen")
        if point.startswith("sftp:"):
            assert remote.temp_files(), "the kill before the rename left no temp file"
        target = tmp_path / f"out{generation}"
        vault.restore(f"{complete}:{src}", "--target", target, env=env)
        assert fs.tree_meta(target, include_root=False) == \
            {k: v for k, v in expected.items() if k != "."}, point

    # The next backup removes the last dead lock (journaled) and, once their lease is
    # over, the temp files of killed saves; then everything reads back.
    time.sleep(1.1)
    final = vault.backup(src, env={**env, "VAULT_REPOSITORY__TEMP_FILE_LEASE": "1s"})
    assert final["status"] == "completed" and final["problems"] == []
    assert len(vault.events("StaleLockRemoved")) == len(remote.kills)
    assert remote.lock_objects() == {} and remote.temp_files() == []
    _verify_ok(vault, env, read_data=True)
    out = tmp_path / "final"
    vault.restore(f"latest:{src}", "--target", out, env=env)
    fs.assert_same_tree(src, out, include_root=False)


@pytest.mark.slow
def test_a_dead_backup_on_another_host_leaves_a_lock_that_expires_and_blocks_no_backup(
        vault, fs, remote: Remote, tmp_path: Path) -> None:
    """The killed backup ran under another host name (a UTS namespace): this host cannot
    ask whether its pid lives, so the lock stays `active` until its lease (300 s) is over
    with no heartbeat; meanwhile backups (shared) go on, an exclusive operation is refused
    naming the holder, and the lock object itself is stale once its lease has passed."""
    if not Path("/usr/bin/unshare").exists() or not _can_unshare_uts():
        pytest.skip("needs unshare --uts (root) to run vault under another host name")
    env = {**remote.env, **SMALL_PACKS}
    src = tmp_path / "src"
    _fill(fs, src, 0)
    vault.ok("init", env=env)
    first = vault.backup(src, env=env)["snapshot_id"]
    _fill(fs, src, 1)
    killed = _run_elsewhere(vault, {**env, "VAULT_FAILPOINTS": "backup:flushed"},
                            "backup", str(src))
    assert killed.returncode == -9, (killed.stdout, killed.stderr)

    [lock] = vault.query("locks", env=env).summary["locks"]
    assert "@elsewhere pid" in lock["holder"] and lock["state"] == "active", lock
    refused = vault.json("forget", first, env=env)
    assert refused.code == 1 and refused.last["error"] == "RepositoryLocked", refused.last
    assert "@elsewhere pid" in refused.last["message"]
    done = vault.backup(src, env=env)
    assert done["status"] == "completed"

    [(lock_id, data)] = remote.lock_objects().items()
    info = LockInfo.from_json(lock_id, data)
    here, namespace = socket.gethostname(), this_pid_namespace()
    assert not is_stale(info, info.heartbeat + timedelta(seconds=info.lease_seconds - 1),
                        here, this_pid_namespace=namespace)
    assert is_stale(info, info.heartbeat + timedelta(seconds=info.lease_seconds + 1),
                    here, this_pid_namespace=namespace)
    assert info.lease_seconds <= 300  # nothing waits longer than five minutes for it

    out = tmp_path / "out"
    vault.restore(f"latest:{src}", "--target", out, env=env)
    fs.assert_same_tree(src, out, include_root=False)
    _verify_ok(vault, env)


def _can_unshare_uts() -> bool:
    done = subprocess.run(["unshare", "--uts", "true"], capture_output=True, check=False)
    return done.returncode == 0


def _run_elsewhere(vault, env: dict[str, str | None], *args: str,
                   ) -> subprocess.CompletedProcess[str]:
    """`vault ARGS` in its own UTS namespace whose host name is `elsewhere`."""
    full = {k: v for k, v in {**vault.env.env, **env}.items() if v is not None}
    return subprocess.run(["unshare", "--uts", "sh", "-c", 'hostname elsewhere && exec "$@"',
                           "sh", str(VAULT_BIN), *args], env=full, cwd=vault.env.root,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300, check=False)


def _incomplete_uploads(server: S3Server, prefix: str) -> list[str]:
    """Multipart uploads begun under ``prefix`` and never completed or aborted (moto
    answers ListMultipartUploads without a signature)."""
    url = f"{server.endpoint}/{BUCKET}?uploads&prefix={prefix}/"
    with urllib.request.urlopen(url, timeout=30) as reply:
        return re.findall(r"<Key>(.*?)</Key>", reply.read().decode())


@pytest.mark.slow
def test_a_backup_killed_mid_upload_to_s3_strands_no_upload(vault, fs, moto: S3Server,
                                                            tmp_path: Path) -> None:
    """The proxy holds the first pack upload before its body is read; the backup is killed
    right then. Nothing half-uploaded stays on the server (saves are single PUTs: a
    multipart upload would leave its begun upload behind, billed and never listed), and
    the next backup completes and reads back whole."""
    remote = _s3_remote(moto)
    prefix = str(remote.env["VAULT_REPOSITORY"]).split("/", 3)[3]
    src = tmp_path / "src"
    for i in range(3):
        fs.write_random(src / f"r{i}.bin", 12 * MiB, seed=i)
    with fault_proxy(moto.endpoint) as (endpoint, faults):
        env = {**remote.env, "AWS_ENDPOINT_URL": endpoint}
        vault.ok("init", env=env)
        faults.hold_uploads()
        backup = subprocess.Popen([str(VAULT_BIN), "backup", str(src)],
                                  env={**vault.env.env, **env}, cwd=vault.env.root,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            assert faults.held.wait(timeout=120), "no upload reached the proxy"
        finally:
            backup.kill()
            backup.wait()
            faults.release()
        assert _incomplete_uploads(moto, prefix) == []

        done = vault.backup(src, env=env)
        assert done["status"] == "completed" and done["problems"] == []
    assert _incomplete_uploads(moto, prefix) == []
    _verify_ok(vault, remote.env, read_data=True)
    out = tmp_path / "out"
    vault.restore(f"latest:{src}", "--target", out, env=remote.env)
    fs.assert_same_tree(src, out, include_root=False)
