"""Damage is remembered and never reused: the status tells the truth, the next backup
stores a whole copy again, and `vault repair` makes the repository healthy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from damage_helpers import flip_byte, largest_pack

MiB = 1 << 20


@pytest.fixture(scope="module")
def flipped_template(vault_at, fs, tmp_path_factory) -> dict:
    """One snapshot of src (big.bin of 4 MiB, small files); a byte flipped in big.bin's
    pack. Made once; each test gets a copy."""
    root = tmp_path_factory.mktemp("heal")
    vault = vault_at(root)
    vault.init()
    src = root / "src"
    fs.write_random(src / "big.bin", 4 * MiB, seed=11)
    (src / "small.txt").write_text("small and intact\n")
    (src / "sub").mkdir()
    (src / "sub" / "other.txt").write_text("also intact\n")
    first = vault.backup(src)["snapshot_id"]
    pack = largest_pack(vault.env.repo)
    flip_byte(pack, pack.stat().st_size // 2)
    return {"src": src, "first": first, "pack": pack.relative_to(vault.env.repo),
            "repo": vault.env.repo}


@pytest.fixture
def flipped(vault, flipped_template: dict) -> dict:
    shutil.copytree(flipped_template["repo"], vault.env.repo, symlinks=True)
    return {**flipped_template, "pack": vault.env.repo / flipped_template["pack"]}


def _statuses(vault) -> dict[str, str]:
    listed = vault.json("snapshots")
    assert listed.code == 0, listed.stderr
    return {s["id"]: s["status"] for s in listed.summary["snapshots"]}


def test_damage_found_by_verify_shows_everywhere_and_is_never_reused(
        vault, flipped, fs, tmp_path: Path) -> None:
    src, first = flipped["src"], flipped["first"]
    assert _statuses(vault) == {first: "completed"}  # nothing known yet

    found = vault.json("verify", "--read-data")
    assert found.code == 1
    assert found.summary["corrupted"] == {first: [str(src / "big.bin")]}

    listed = vault.json("snapshots")
    [shown] = listed.summary["snapshots"]
    assert shown["status"] == "corrupted"
    assert shown["damaged_paths"] == [str(src / "big.bin")]
    assert "corrupted" in vault.ok("snapshots").stdout
    assert vault.run("status", "--check").returncode == 1
    listing = vault.json("ls", first, str(src))
    assert listing.summary["status"] == "corrupted"
    assert {e["path"]: e["damaged"] for e in listing.summary["entries"]} == {
        str(src / "big.bin"): True, str(src / "small.txt"): False, str(src / "sub"): False}
    assert f"{src / 'big.bin'}  [damaged]" in vault.ok("ls", first, str(src)).stdout

    # The next backup of the intact source reads big.bin again (the index no longer
    # trusts the bad copy, so the files cache's "unchanged" is not taken on faith) and
    # stores the damaged chunk again: only that one, the others are fine.
    second = vault.backup(src)
    assert 0 < second["bytes_new"] < 4 * MiB
    target = tmp_path / "second"
    vault.restore(second["snapshot_id"], "--target", target)
    fs.assert_same_tree(src, fs.restored_path(target, src))

    # The first snapshot names the same blob, whose healthy copy now exists: it is whole
    # again and restores byte-identical too (self-healing).
    assert _statuses(vault) == {first: "completed", second["snapshot_id"]: "completed"}
    target = tmp_path / "first"
    vault.restore(first, "--target", target)
    fs.assert_same_tree(src, fs.restored_path(target, src))

    # The bad copy is still in its pack until `vault repair packs` drops it.
    still = vault.json("verify", "--read-data")
    assert still.code == 1
    assert still.summary["corrupted"] == {}
    assert any("repair packs" in p for p in still.summary["problems"])


def test_a_backup_after_a_pack_was_deleted_stores_the_data_again(
        vault, flipped, fs, tmp_path: Path) -> None:
    src = flipped["src"]
    flipped["pack"].unlink()
    again = vault.backup(src, "--force")
    assert again["bytes_new"] >= 4 * MiB
    target = tmp_path / "out"
    vault.restore(again["snapshot_id"], "--target", target)
    fs.assert_same_tree(src, fs.restored_path(target, src))


def test_repair_packs_and_snapshots_end_in_a_healthy_repository(
        vault, flipped, fs, tmp_path: Path) -> None:
    """The issue's sequence without the healing backup: the only copy of one chunk of
    big.bin is bad. Repair salvages the rest of the pack, writes a repaired snapshot
    (big.bin truncated to its readable prefix), forgets the original: verify is clean."""
    src, first = flipped["src"], flipped["first"]
    assert vault.json("verify", "--read-data").code == 1

    dry = vault.json("repair", "packs", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert dry.summary["changes"]["blobs_lost"] == 1
    assert dry.summary["lost"] == [{"snapshot_id": first, "path": str(src / "big.bin")}]
    assert flipped["pack"].exists()  # a dry run changes nothing

    packs = vault.json("repair", "packs")
    assert packs.code == 0, packs.stderr
    changes = packs.summary["changes"]
    assert changes["packs_damaged"] == 1 and changes["packs_deleted"] == 1
    assert changes["blobs_lost"] == 1 and changes["blobs_salvaged"] >= 1
    assert not flipped["pack"].exists()
    assert packs.summary["lost"] == [{"snapshot_id": first, "path": str(src / "big.bin")}]
    assert _statuses(vault) == {first: "corrupted"}

    fixed = vault.json("repair", "snapshots", "--forget")
    assert fixed.code == 0, fixed.stderr
    [(original, copy)] = fixed.summary["repaired"].items()
    assert original == first
    assert _statuses(vault) == {copy: "repaired"}
    [shown] = vault.json("snapshots").summary["snapshots"]
    assert shown["repaired_from"] == first and "repaired" in shown["tags"]
    [truncated] = shown["repair"]["truncated"]
    assert truncated["path"] == str(src / "big.bin") and truncated["size"] == 4 * MiB

    done = vault.json("verify", "--read-data")
    assert done.code == 0, done.summary["problems"]

    target = tmp_path / "out"
    vault.restore(copy, "--target", target)
    out = fs.restored_path(target, src)
    for name in ("small.txt", "sub/other.txt"):
        assert (out / name).read_bytes() == (src / name).read_bytes()
    kept = (out / "big.bin").read_bytes()
    assert len(kept) == truncated["kept"] < 4 * MiB
    assert kept == (src / "big.bin").read_bytes()[: len(kept)]

    events = {e["type"]: e["payload"] for e in vault.events(
        "RepairStarted", "RepairCompleted", "SnapshotRepaired")}
    assert events["SnapshotRepaired"]["original_id"] == first
    assert events["RepairCompleted"]["target"] == "snapshots"


def test_a_restore_that_meets_damage_remembers_it(vault, flipped, fs, tmp_path: Path) -> None:
    """No verify ran: the restore finds the bad chunk, records it, and the next backup
    stores it again (so the snapshot is whole again)."""
    src, first = flipped["src"], flipped["first"]
    failed = vault.json("restore", first, "--target", tmp_path / "out")
    assert failed.code == 3
    assert _statuses(vault) == {first: "corrupted"}
    healed = vault.backup(src)
    assert 0 < healed["bytes_new"] < 4 * MiB
    target = tmp_path / "again"
    vault.restore(first, "--target", target)
    fs.assert_same_tree(src, fs.restored_path(target, src))


def test_the_history_follows_damage_repairs_and_a_clean_verify(vault, flipped, fs) -> None:
    """The TUI history reads the journal's snapshots projection: corrupted after the
    verify, the repaired copy listed as repaired, the original forgotten; a healed
    snapshot goes back to completed once a verify finds nothing wrong."""
    from vault_tui.data.history import read_snapshots

    src = flipped["src"]
    made = vault.backup(src, "--force")["snapshot_id"]  # a snapshot this journal knows
    assert vault.json("verify", "--read-data").code == 1

    def history() -> dict[str, str]:
        return {row.snapshot_id: row.status for row in read_snapshots(vault.env.journal_path)}

    assert history() == {made: "corrupted"}
    vault.json("repair", "packs")
    fixed = vault.json("repair", "snapshots", "--forget").summary["repaired"]
    assert history() == {made: "forgotten", fixed[made]: "repaired"}

    healed = vault.backup(src)["snapshot_id"]
    assert vault.json("verify", "--read-data").code == 0
    assert history()[healed] == "completed" and history()[fixed[made]] == "repaired"


def test_a_healed_snapshot_is_completed_again_in_the_history(vault, flipped) -> None:
    from vault_tui.data.history import read_snapshots

    src = flipped["src"]
    made = vault.backup(src, "--force")["snapshot_id"]
    assert vault.json("verify", "--read-data").code == 1
    vault.backup(src)  # stores the damaged chunk again: `made` is whole again
    vault.json("repair", "packs")  # drops the bad copy: nothing is damaged any more
    assert vault.json("verify", "--read-data").code == 0
    rows = {row.snapshot_id: row.status for row in read_snapshots(vault.env.journal_path)}
    assert rows[made] == "completed"
    assert vault.run("status", "--check").returncode == 0
