"""`vault prune` and `vault backup` at the same time, as two real processes: nothing lost.

The dangerous case is built on purpose: the backup's data includes files whose chunks
only a *forgotten* snapshot used, so prune sees them as garbage while the backup
deduplicates against them. Afterwards every snapshot verifies with `--read-data` and
restores byte for byte, immediately and after later prunes.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

MiB = 1 << 20
SMALL_PACKS = {"VAULT_REPOSITORY__PACK_SIZE_MIB": "4"}


def _verify_ok(vault) -> dict:
    result = vault.json("verify", "--read-data")
    assert result.code == 0, (result.last, result.stderr)
    assert result.summary["ok"] is True and result.summary["problems"] == []
    assert result.summary["corrupted"] == {}
    return result.summary


def _assert_restores(vault, fs, snapshot_id: str, src: Path, expected: dict, target: Path) -> None:
    vault.restore(f"{snapshot_id}:{src}", "--target", target)
    got = fs.tree_meta(target, include_root=False)
    assert got == {k: v for k, v in expected.items() if k != "."}


def _finish(proc: subprocess.Popen[bytes], what: str) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{what} exited {proc.returncode}: {err.decode()}"
    return out.decode()


@pytest.mark.slow
@pytest.mark.parametrize("backup_delay", [-0.3, 0.0, 0.3])
def test_backup_during_prune_loses_nothing(vault_repo, fs, tmp_path: Path,
                                           backup_delay: float) -> None:
    vault = vault_repo
    vault.env.env.update(SMALL_PACKS)
    src = tmp_path / "src"
    for i in range(4):  # old data every snapshot keeps
        fs.write_random(src / "old" / f"o{i}.bin", 10 * MiB, seed=i)
    for i in range(6):  # data only the snapshot about to be forgotten holds
        fs.write_random(src / "revived" / f"r{i}.bin", 10 * MiB + i, seed=100 + i)
    forgotten = vault.backup(src)["snapshot_id"]
    revived = src / "revived"
    parked = tmp_path / "parked"
    revived.rename(parked)  # out of the way for the next snapshot...
    kept = [(vault.backup(src)["snapshot_id"], fs.tree_meta(src))]
    vault.ok("forget", forgotten)
    parked.rename(revived)  # ...and back for the concurrent backup, which reuses it
    for i in range(10):  # plus new data
        fs.write_random(src / "new" / f"n{i}.bin", 10 * MiB, seed=200 + i)
    expected = fs.tree_meta(src)  # ~200 MB: 40 old, 60 garbage-to-prune, 100 new

    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    if backup_delay < 0:
        backup = vault.popen("backup", src, "--json", **pipes)
        time.sleep(-backup_delay)
        prune = vault.popen("prune", "--max-unused", "0%", "--json", **pipes)
    else:
        prune = vault.popen("prune", "--max-unused", "0%", "--json", **pipes)
        time.sleep(backup_delay)
        backup = vault.popen("backup", src, "--json", **pipes)
    prune_summary = fs.parse_json_lines(_finish(prune, "prune"))[-1]
    backup_summary = fs.parse_json_lines(_finish(backup, "backup"))[-1]
    assert prune_summary["packs_condemned"] > 0, "prune found nothing to collect"
    kept.append((backup_summary["snapshot_id"], expected))

    # Right away, without any further prune: every snapshot is whole.
    _verify_ok(vault)
    for i, (snap, meta) in enumerate(kept):
        _assert_restores(vault, fs, snap, src, meta, tmp_path / f"now{i}")

    # Later prunes (nothing running next to them) settle what is left and lose nothing.
    for _ in range(2):
        summary = vault.json("prune", "--max-unused", "0%").summary
    assert summary["condemned_pending"] == 0
    verified = _verify_ok(vault)
    assert verified["unreferenced_packs"] == []
    for i, (snap, meta) in enumerate(kept):
        _assert_restores(vault, fs, snap, src, meta, tmp_path / f"later{i}")


@pytest.mark.slow
def test_restore_during_prune_reads_every_byte(vault_repo, fs, tmp_path: Path) -> None:
    # A restore that loaded the index before prune dropped (repacked) its packs keeps
    # reading them: prune deletes them only once the restore's lock is gone.
    vault = vault_repo
    vault.env.env.update(SMALL_PACKS)
    src = tmp_path / "src"
    for i in range(60):
        fs.write_random(src / f"f{i:02d}.bin", 2 * MiB + i, seed=i)
    first = vault.backup(src)["snapshot_id"]
    for i in range(0, 60, 2):
        fs.write_random(src / f"f{i:02d}.bin", 2 * MiB + i, seed=1000 + i)
    kept = vault.backup(src)["snapshot_id"]
    expected = fs.tree_meta(src)
    vault.ok("forget", first)

    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    target = tmp_path / "out"
    prune = vault.popen("prune", "--max-unused", "0%", "--json", **pipes)
    deadline = time.monotonic() + 60
    while not any((vault.env.repo / "locks").iterdir()):  # prune is under way
        assert time.monotonic() < deadline and prune.poll() is None
        time.sleep(0.005)
    restore = vault.popen("restore", f"{kept}:{src}", "--target", target, "--json", **pipes)
    _finish(restore, "restore")
    summary = fs.parse_json_lines(_finish(prune, "prune"))[-1]
    assert summary["packs_condemned"] > 0
    assert fs.tree_meta(target, include_root=False) == {
        k: v for k, v in expected.items() if k != "."}
    _verify_ok(vault)
    vault.json("prune")
    assert _verify_ok(vault)["unreferenced_packs"] == []
