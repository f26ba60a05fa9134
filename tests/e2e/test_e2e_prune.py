"""`vault prune` end to end: forgotten data is reclaimed, everything kept still restores
byte for byte, `--dry-run` changes nothing, and the run is journaled."""

from __future__ import annotations

import random
from pathlib import Path

KiB = 1 << 10
#: small packs, so a few MB of data spread over many packs that forget leaves half used
SMALL_PACKS = {"VAULT_REPOSITORY__PACK_SIZE_MIB": "4"}


def _generation(fs, src: Path, gen: int, files: int = 60) -> None:
    """Rewrite about a third of `files` files of ~300 KiB (all of them the first time)."""
    rng = random.Random(gen)
    for i in range(files):
        path = src / f"f{i:03d}.bin"
        if not path.exists() or rng.random() < 0.34:
            fs.write_random(path, 300 * KiB + i, seed=gen * 1000 + i)


def _verify_ok(vault) -> dict:
    result = vault.json("verify", "--read-data")
    assert result.code == 0, (result.last, result.stderr)
    assert result.summary["ok"] is True and result.summary["problems"] == []
    return result.summary


def _assert_restores(vault, fs, snapshot_id: str, src: Path, expected: dict, target: Path) -> None:
    vault.restore(f"{snapshot_id}:{src}", "--target", target)
    got = fs.tree_meta(target, include_root=False)
    assert got == {k: v for k, v in expected.items() if k != "."}


def test_prune_after_forget_frees_space_and_keeps_everything_else(
        vault_repo, fs, tmp_path: Path) -> None:
    vault = vault_repo
    vault.env.env.update(SMALL_PACKS)
    src = tmp_path / "src"
    history: list[tuple[str, dict]] = []
    for gen in range(5):
        _generation(fs, src, gen)
        snap = vault.backup(src)["snapshot_id"]
        history.append((snap, fs.tree_meta(src)))
    for snap, _ in history[:3]:
        vault.ok("forget", snap)
    before = fs.dir_size(vault.env.repo)

    # --dry-run: a plan and an estimate, and not one byte of the repository changes
    digest = fs.dir_digest(vault.env.repo)
    dry = vault.json("prune", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert dry.summary["dry_run"] is True
    assert dry.summary["estimated_bytes_freed"] > 0 and dry.summary["packs_condemned"] > 0
    assert fs.dir_digest(vault.env.repo) == digest
    assert not vault.events("PruneRequested"), "a dry run is not a job"

    result = vault.json("prune", "--max-unused", "10%")
    assert result.code == 0, result.stderr
    summary = result.summary
    assert summary["packs_repacked"] > 0 and summary["packs_deleted"] > 0
    assert summary["condemned_pending"] == 0, "nothing else ran: deleted in the same run"
    assert summary["bytes_freed"] > 0
    assert summary["blobs_removed"] > 0
    after = fs.dir_size(vault.env.repo)
    assert before - after >= summary["bytes_freed"] * 0.95
    # roughly what the dry run promised
    assert abs(summary["bytes_freed"] - dry.summary["estimated_bytes_freed"]) \
        <= 0.2 * dry.summary["estimated_bytes_freed"]

    verified = _verify_ok(vault)
    assert verified["snapshots_checked"] == 2
    assert verified["unreferenced_packs"] == []
    for i, (snap, expected) in enumerate(history[3:]):
        _assert_restores(vault, fs, snap, src, expected, tmp_path / f"out{i}")

    # journaled as a job, with progress
    job = summary["job_id"]
    types = [e["type"] for e in vault.events() if e.get("stream_id") == job]
    # an inline job claims itself (host, pid) so a kill is seen as an interruption
    assert types[:3] == ["PruneRequested", "JobClaimed", "PruneStarted"], types
    assert "PruneProgressed" in types and types[-1] == "PruneCompleted", types
    completed = vault.events("PruneCompleted")[-1]["payload"]
    assert completed["bytes_freed"] == summary["bytes_freed"]

    # a second run has nothing left to do
    again = vault.json("prune", "--max-unused", "10%").summary
    assert again["packs_condemned"] == 0 and again["packs_deleted"] == 0


def test_prune_with_every_snapshot_forgotten_empties_the_repository(
        vault_repo, fs, tmp_path: Path) -> None:
    vault = vault_repo
    src = tmp_path / "src"
    _generation(fs, src, 0, files=10)
    snap = vault.backup(src)["snapshot_id"]
    vault.ok("forget", snap)
    summary = vault.json("prune").summary
    assert summary["snapshots"] == 0 and summary["packs_deleted"] >= 1
    assert list((vault.env.repo / "data").rglob("*")) == [
        p for p in (vault.env.repo / "data").rglob("*") if p.is_dir()]
    _verify_ok(vault)
    # and the repository is still good for new backups
    snap = vault.backup(src)["snapshot_id"]
    _verify_ok(vault)
    out = tmp_path / "out"
    vault.restore(f"{snap}:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)


def test_prune_refuses_bad_max_unused(vault_repo) -> None:
    result = vault_repo.json("prune", "--max-unused", "lots")
    assert result.code == 2
    assert "--max-unused" in result.last["message"]


def test_a_second_prune_is_refused_but_backups_go_on(vault_repo, fs, tmp_path: Path) -> None:
    from vault.repository.lock import RepositoryLock
    from vault.storage.local import LocalStorage

    vault = vault_repo
    src = tmp_path / "src"
    _generation(fs, src, 0, files=4)
    storage = LocalStorage(vault.env.repo)
    with RepositoryLock.acquire(storage, exclusive=False, operation="prune"):
        refused = vault.json("prune")
        assert refused.code == 1
        assert refused.last["error"] == "RepositoryLocked", refused.last
        assert "(prune)" in refused.last["message"]
        vault.backup(src)  # a shared lock: backups are not stopped by a running prune
    failed = vault.events("PruneFailed")
    assert failed and failed[-1]["payload"]["error_kind"] == "RepositoryLocked"
    assert vault.json("prune").code == 0
