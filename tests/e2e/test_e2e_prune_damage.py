"""Prune next to damage: a pack deleted behind vault's back stops prune (recorded, with the
way out), and a damaged pack a snapshot still needs is never deleted by prune."""

from __future__ import annotations

from pathlib import Path

from damage_helpers import packs

MiB = 1 << 20


def _two_backups(vault, fs, tmp_path: Path) -> tuple[Path, Path, str, str, Path]:
    """Snapshot A of a/, then snapshot B of b/; returns (a, b, their ids, the pack holding
    B's data: the largest it wrote, its trees' pack being tiny)."""
    a, b = tmp_path / "a", tmp_path / "b"
    fs.write_random(a / "one.bin", 2 * MiB, seed=1)
    fs.write_random(b / "two.bin", 2 * MiB, seed=2)
    first = vault.backup(a)["snapshot_id"]
    before = set(packs(vault.env.repo))
    second = vault.backup(b)["snapshot_id"]
    new_packs = set(packs(vault.env.repo)) - before
    return a, b, first, second, max(new_packs, key=lambda p: p.stat().st_size)


def _damage_records(repo: Path) -> list[Path]:
    return sorted(p for p in (repo / "damaged").glob("*") if not p.name.startswith("."))


def test_prune_refuses_a_missing_pack_records_it_and_says_what_to_do(
        vault_repo, fs, tmp_path: Path) -> None:
    vault = vault_repo
    a, b, first, second, gone = _two_backups(vault, fs, tmp_path)
    gone.unlink()  # behind vault's back
    assert not _damage_records(vault.env.repo)

    digest = fs.dir_digest(vault.env.repo)
    dry = vault.json("prune", "--dry-run")
    assert (dry.code, dry.last["error"]) == (1, "PacksMissing"), dry.last
    assert fs.dir_digest(vault.env.repo) == digest, "a dry run wrote something"

    done = vault.run("prune")
    assert done.returncode == 1
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert line.startswith("vault: error: 1 pack(s) the index names are missing")
    assert gone.name[:12] in line and "vault repair index" in line
    failed = vault.events("PruneFailed")
    assert [e["payload"]["error_kind"] for e in failed] == ["PacksMissing"]
    assert not vault.events("PruneCompleted")
    # Remembered as damage: the next backup stores that data again instead of reusing it.
    assert len(_damage_records(vault.env.repo)) == 1
    assert gone not in packs(vault.env.repo) and len(packs(vault.env.repo)) == 3, \
        "prune deleted something after all"

    # The runbook (docs/repair.md): the index first, a backup heals what it can.
    vault.ok("repair", "index")
    vault.backup(b)
    result = vault.json("prune")
    assert result.code == 0, (result.last, result.stderr)
    for name, (snapshot, src) in {"a": (first, a), "b": (second, b)}.items():
        out = tmp_path / f"out-{name}"
        vault.restore(f"{snapshot}:{src}", "--target", out)
        fs.assert_same_tree(src, out, include_root=False)


def test_the_issue_sequence_backup_force_then_prune(vault_repo, fs, tmp_path: Path) -> None:
    """Delete a pack, `backup --force` (records it, stores the data again), prune: prune
    used to exit 0 counting the missing pack as kept; it refuses now, until the index is
    repaired, and then both snapshots restore."""
    vault = vault_repo
    a, b, first, _second, gone = _two_backups(vault, fs, tmp_path)
    gone.unlink()
    healed = vault.backup(b, "--force")["snapshot_id"]
    assert len(_damage_records(vault.env.repo)) == 1  # the backup's
    done = vault.json("prune")
    assert (done.code, done.last["error"]) == (1, "PacksMissing"), done.last
    assert len(_damage_records(vault.env.repo)) == 1  # known already: no second record

    vault.ok("repair", "index")
    assert vault.json("prune").code == 0
    for name, (snapshot, src) in {"a": (first, a), "b": (healed, b)}.items():
        out = tmp_path / f"out-{name}"
        vault.restore(f"{snapshot}:{src}", "--target", out)
        fs.assert_same_tree(src, out, include_root=False)


def test_prune_keeps_a_damaged_pack_a_snapshot_still_needs(
        vault_repo, fs, tmp_path: Path) -> None:
    """A truncated pack is recorded by verify; its blobs before the cut can still be
    salvaged, so prune stops (naming `vault repair packs`) and deletes nothing."""
    vault = vault_repo
    _a, _b, first, _second, cut = _two_backups(vault, fs, tmp_path)
    vault.ok("forget", first)  # something for prune to do
    data = cut.read_bytes()
    cut.chmod(0o600)
    cut.write_bytes(data[: len(data) // 2])
    assert vault.run("verify").returncode == 1  # records the damage
    assert _damage_records(vault.env.repo)
    kept = fs.dir_digest(vault.env.repo / "data")

    done = vault.run("prune")
    assert done.returncode == 1
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "only copy is damaged" in line and "vault repair packs" in line
    assert fs.dir_digest(vault.env.repo / "data") == kept
    assert cut.read_bytes() == data[: len(data) // 2]
