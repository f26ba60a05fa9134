"""kill -9 in the middle of a backup: the repository stays consistent and nothing is lost.

Write order packs -> index -> snapshot means a killed backup leaves, at worst, packs no
index names yet (reported by verify, reused by the next backup) and a stale lock (same
host, dead pid) that the next operation removes by itself. The kills land at named points
of that order (`VAULT_FAILPOINTS`), not after a delay, so each one bites on any machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

MiB = 1 << 20


def _fill(fs, src: Path, generation: int) -> None:
    """~100 MB: 48 MB of random data (new every generation) and 50 MB of text."""
    for i in range(4):
        fs.write_random(src / "random" / f"r{i}.bin", 12 * MiB, seed=1000 * generation + i)
    for i in range(2):
        path = src / "text" / f"t{i}.log"
        if not path.exists():
            fs.write_compressible(path, 25 * MiB, seed=i)


def _wait_for_lock(repo: Path, deadline: float) -> None:
    while not any((repo / "locks").iterdir()):
        assert time.monotonic() < deadline, "the backup never took its lock"
        time.sleep(0.01)


def _verify_ok(vault, read_data: bool = False) -> dict:
    """Verify the structure (every pack the index names is there, whole; every blob of
    every snapshot indexed) or, with `read_data`, every pack's bytes too. Between kills
    the structure is enough: restoring the complete snapshot then reads its data."""
    result = vault.json("verify", *(["--read-data"] if read_data else []))
    assert result.code == 0, (result.last, result.stderr)
    summary = result.summary
    assert summary["ok"] is True and summary["problems"] == []
    assert summary["corrupted"] == {}
    return summary


def _assert_restores(vault, fs, snapshot_id: str, src: Path, expected: dict,
                     target: Path) -> None:
    vault.restore(f"{snapshot_id}:{src}", "--target", target)
    got = fs.tree_meta(target, include_root=False)
    assert got == {k: v for k, v in expected.items() if k != "."}


#: where each backup is killed (vault.foundation.failpoints), and whether the killed backup
#: has committed its snapshot by then: every step of the write order packs -> index ->
#: snapshot, some twice, so no kill depends on this machine's speed
KILLS = [
    ("saver:pack-written@1", False),
    ("saver:pack-written@2", False),
    ("saver:pack-written@3", False),
    ("saver:index-written@1", False),
    ("backup:flushed", False),
    ("backup:snapshot-written", True),
    ("saver:pack-written@1", False),
    ("saver:pack-written@2", False),
    ("backup:flushed", False),
    ("backup:snapshot-written", True),
]


@pytest.mark.slow
def test_kill_9_during_backup_ten_times(vault_repo, fs, tmp_path: Path) -> None:
    vault = vault_repo
    src = tmp_path / "src"
    _fill(fs, src, 0)
    expected = fs.tree_meta(src)
    complete = vault.backup(src)["snapshot_id"]

    for generation, (point, commits) in enumerate(KILLS, start=1):
        _fill(fs, src, generation)  # new data, so the backup has packs to write
        candidate = fs.tree_meta(src)
        before = {s["id"] for s in vault.query("snapshots").summary["snapshots"]}
        killed = vault.run("backup", src, "--force",
                           env={**vault.env.env, "VAULT_FAILPOINTS": point})
        assert killed.returncode == -9, (point, killed.stdout, killed.stderr)

        after = [s["id"] for s in vault.query("snapshots").summary["snapshots"]]
        new = [sid for sid in after if sid not in before]
        assert len(new) == (1 if commits else 0), (point, new)
        if commits:  # a committed snapshot is whole, though its job was never journaled
            complete, expected = new[0], candidate
        locks = vault.query("locks").summary["locks"]
        assert locks and all(lock["state"] == "stale" for lock in locks), (point, locks)
        summary = _verify_ok(vault)
        if point.startswith("saver:pack-written"):
            assert summary["unreferenced_packs"], (point, "the killed pack is not seen")
        _assert_restores(vault, fs, complete, src, expected, tmp_path / f"out{generation}")

    # One more kill, once the lock is certainly written: an exclusive operation is not
    # blocked by it (same host, dead pid: stale) and says it removed it.
    _fill(fs, src, 11)
    proc = vault.popen("backup", src)
    _wait_for_lock(vault.env.repo, time.monotonic() + 30)
    proc.kill()
    proc.wait()
    new_key = tmp_path / "new-pass"
    new_key.write_text("another passphrase\n")
    new_key.chmod(0o600)
    vault.ok("key", "add", "--new-password-file", new_key)
    assert vault.events("StaleLockRemoved"), "the stale lock was not journaled"

    final = vault.backup(src)
    assert final["status"] == "completed"
    _verify_ok(vault, read_data=True)
    out = tmp_path / "final"
    vault.restore(f"latest:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)
