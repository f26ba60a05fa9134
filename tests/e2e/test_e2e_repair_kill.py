"""kill -9 at every step of each repair: the repository stays consistent (snapshots list,
nothing new is lost) and the same repair, run again, finishes the job: in the end verify
--read-data exits 0 and every file that was not lost restores byte-identical.

The kills are real SIGKILLs of the `vault repair` process, at the named points between
the steps whose order makes a repair crash-safe (vault.foundation.failpoints)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from damage_helpers import flip_byte, packs

MiB = 1 << 20

pytestmark = pytest.mark.slow

#: every point of each repair a test kills at
POINTS = {
    "index": ["locked", "headers-read", "index-written", "index-removing", "done"],
    "packs": ["locked", "salvaged", "index-removing", "packs-deleting", "record-saved"],
    "snapshots": ["locked", "trees-saved", "snapshot-saved", "forgetting", "done"],
}


@pytest.fixture(scope="module")
def damaged_template(vault_at, fs, tmp_path_factory) -> dict:
    """Three backups (each its own index file and packs); a byte flipped in the packs of
    the first two and the third's index file deleted, then verify recorded the damage."""
    root = tmp_path_factory.mktemp("repair-kill")
    vault = vault_at(root)
    vault.init()
    src = root / "src"
    (src / "notes").mkdir(parents=True)
    new_packs, snapshots = [], []
    for gen in range(3):
        fs.write_random(src / f"gen{gen}.bin", 600_000, seed=30 + gen)
        (src / "notes" / f"note{gen}.txt").write_text(f"note {gen}\n")
        before = set(packs(vault.env.repo))
        snapshots.append(vault.backup(src)["snapshot_id"])
        new_packs.append(sorted(set(packs(vault.env.repo)) - before,
                                key=lambda p: p.stat().st_size)[-1])
    for pack in new_packs[:2]:
        flip_byte(pack, pack.stat().st_size // 3)
    index_files = sorted((vault.env.repo / "index").iterdir(), key=lambda p: p.stat().st_mtime)
    index_files[-1].unlink()
    assert vault.json("verify", "--read-data").code == 1
    # The state each repair starts from (the repairs before it done), kept aside.
    before = {}
    for target in ORDER:
        before[target] = root / f"before-{target}"
        shutil.copytree(vault.env.repo, before[target], symlinks=True)
        _repair(vault, target)
    return {"src": src, "before": before, "snapshots": snapshots}


ORDER = ["index", "packs", "snapshots"]


def _lost(result) -> set[tuple[str, str]]:
    return {(i["snapshot_id"], i["path"]) for i in result.summary["lost"]}


def _repair(vault, target: str, *, kill_at: str | None = None):
    args = ["repair", target] + (["--forget"] if target == "snapshots" else [])
    if kill_at is None:
        done = vault.json(*args)
        assert done.code == 0, done.stderr
        return done
    env = {**vault.env.env, "VAULT_FAILPOINTS": f"repair-{target}:{kill_at}"}
    killed = vault.run(*args, env=env)
    assert killed.returncode == -9, (target, kill_at, killed.stdout, killed.stderr)
    return None


def _healthy_in_the_end(vault, fs, damaged: dict, tmp_path: Path) -> None:
    """verify --read-data exits 0, and every snapshot restores each file it held (gen0 ..
    genK for the K-th backup) byte-identical, except what its repair dropped or cut (a
    cut file is a prefix of the original)."""
    verified = vault.json("verify", "--read-data")
    assert verified.code == 0, verified.summary["problems"]
    src = damaged["src"]
    for snapshot in vault.json("snapshots").summary["snapshots"]:
        backup_number = damaged["snapshots"].index(snapshot["repaired_from"] or snapshot["id"])
        held = [src / f"gen{g}.bin" for g in range(backup_number + 1)]
        held += [src / "notes" / f"note{g}.txt" for g in range(backup_number + 1)]
        repair = snapshot["repair"] or {}
        cut = {t["path"] for t in repair.get("truncated", [])}
        dropped = set(repair.get("dropped", []))
        target = tmp_path / f"out-{snapshot['id'][:8]}"
        vault.restore(snapshot["id"], "--target", target)
        out = fs.restored_path(target, src)
        for path in held:
            restored = out / path.relative_to(src)
            if str(path) in dropped:
                assert not restored.exists()
            elif str(path) in cut:
                assert path.read_bytes().startswith(restored.read_bytes())
            else:
                assert restored.read_bytes() == path.read_bytes(), path


@pytest.mark.parametrize("target,point", [(t, p) for t, ps in POINTS.items() for p in ps])
def test_a_killed_repair_can_be_run_again(vault, damaged_template, fs, tmp_path: Path,
                                          target: str, point: str) -> None:
    damaged = damaged_template
    shutil.copytree(damaged["before"][target], vault.env.repo, symlinks=True)
    expected = _lost(vault.json("repair", target, "--dry-run"))

    _repair(vault, target, kill_at=point)
    # Consistent after the kill: everything lists, and nothing more is lost than the
    # repair meant to give up.
    assert vault.json("snapshots").code == 0
    after_kill = vault.json("repair", target, "--dry-run")
    assert after_kill.code == 0, after_kill.stderr
    assert _lost(after_kill) <= expected

    _repair(vault, target)  # run again: it finishes the job
    for after in ORDER[ORDER.index(target) + 1:]:
        _repair(vault, after)
    _healthy_in_the_end(vault, fs, damaged, tmp_path)
