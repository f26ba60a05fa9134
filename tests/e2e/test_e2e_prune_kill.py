"""kill -9 in the middle of `vault prune`, again and again: the repository verifies and
every snapshot restores after each kill, and a final prune finishes the job.

Prune's order (new packs -> new index -> condemned record -> old index removed -> packs
deleted once nothing can need them) means a kill leaves at worst packs no index names
(unreferenced, not damage) or a half-finished index switch that the next prune completes.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

KiB = 1 << 10
SMALL_PACKS = {"VAULT_REPOSITORY__PACK_SIZE_MIB": "4"}


def _generation(fs, src: Path, gen: int) -> None:
    """~80 MB in 100 files; each generation rewrites about half of them."""
    rng = random.Random(gen)
    for i in range(100):
        path = src / f"f{i:03d}.bin"
        if not path.exists() or rng.random() < 0.5:
            fs.write_random(path, 800 * KiB + i, seed=gen * 1000 + i)


def _index_files(repo: Path) -> set[str]:
    return {p.name for p in (repo / "index").iterdir()}


def _lock_taken(repo: Path, _before: set[str]) -> bool:
    return any((repo / "locks").iterdir())


def _index_written(repo: Path, before: set[str]) -> bool:
    return bool(_index_files(repo) - before)


def _condemned(repo: Path, _before: set[str]) -> bool:
    return (repo / "condemned").is_dir() and any((repo / "condemned").iterdir())


def _old_index_removing(repo: Path, before: set[str]) -> bool:
    return bool(before - _index_files(repo))


#: moments to kill at, one per round in turn: while scanning or repacking (a random time
#: after the lock), once the new index is being written, once the record exists, and
#: while the old index files are being removed
TRIGGERS = [_lock_taken, _index_written, _condemned, _old_index_removing]


def _wait_for(trigger, repo: Path, proc, rng: random.Random) -> None:
    before = _index_files(repo)
    deadline = time.monotonic() + 120
    while not trigger(repo, before) and proc.poll() is None:
        assert time.monotonic() < deadline, "prune never got there"
        time.sleep(0.001)
    if trigger is _lock_taken:
        time.sleep(rng.uniform(0.05, 0.4))


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


@pytest.mark.slow
def test_kill_9_during_prune_many_times(vault_repo, fs, tmp_path: Path) -> None:
    vault = vault_repo
    vault.env.env.update(SMALL_PACKS)
    src = tmp_path / "src"
    kept: list[tuple[str, dict]] = []
    for gen in range(2):
        _generation(fs, src, gen)
        kept.append((vault.backup(src)["snapshot_id"], fs.tree_meta(src)))
    rng = random.Random(20261123)
    killed = 0
    leftovers = 0  # kills that left unindexed packs or an unsettled condemned record

    for round_ in range(7):
        # new garbage for every round: one more generation, the oldest snapshot forgotten
        _generation(fs, src, 2 + round_)
        kept.append((vault.backup(src)["snapshot_id"], fs.tree_meta(src)))
        vault.ok("forget", kept.pop(0)[0])

        proc = vault.popen("prune", "--max-unused", "0%")
        _wait_for(TRIGGERS[round_ % len(TRIGGERS)], vault.env.repo, proc, rng)
        proc.kill()
        if proc.wait() != 0:
            killed += 1

        verified = _verify_ok(vault)
        leftovers += bool(verified["unreferenced_packs"])
        snap, expected = kept[round_ % len(kept)]
        _assert_restores(vault, fs, snap, src, expected, tmp_path / f"out{round_}")

    assert killed >= 4, f"only {killed} kill(s) landed before prune finished"
    assert leftovers >= 1, "no kill left anything half done: the test did not bite"
    print(f"{killed} kills, {leftovers} left something to finish")

    # A prune left to finish completes what the killed ones started and leaves nothing.
    summary = vault.json("prune", "--max-unused", "0%").summary
    assert summary["condemned_pending"] == 0
    records = [p for p in (vault.env.repo / "condemned").iterdir()
               if not p.name.startswith(".tmp-")]  # a killed save's debris is no record
    assert records == []
    verified = _verify_ok(vault)
    assert verified["unreferenced_packs"] == []
    for i, (snap, expected) in enumerate(kept):
        _assert_restores(vault, fs, snap, src, expected, tmp_path / f"final{i}")
