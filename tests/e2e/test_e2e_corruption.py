"""Damage in the repository is found, traced to snapshots and paths, and contained."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from damage_helpers import flip_byte, largest_pack

MiB = 1 << 20


@pytest.fixture(scope="module")
def damaged_template(vault_at, fs, tmp_path_factory) -> dict:
    """Two snapshots of src (both hold big.bin) and one of other/; then one byte in the
    middle of the pack holding big.bin is flipped. Made once; each test gets a copy."""
    root = tmp_path_factory.mktemp("damaged")
    vault = vault_at(root)
    vault.init()
    src = root / "src"
    fs.write_random(src / "big.bin", 4 * MiB, seed=1)
    (src / "small.txt").write_text("small and intact\n")
    (src / "sub").mkdir()
    (src / "sub" / "other.txt").write_text("also intact\n")
    first = vault.backup(src)["snapshot_id"]
    (src / "later.txt").write_text("added later\n")
    second = vault.backup(src)["snapshot_id"]
    other = root / "other"
    fs.write_random(other / "unrelated.bin", 100_000, seed=2)
    third = vault.backup(other)["snapshot_id"]

    pack = largest_pack(vault.env.repo)
    assert pack.stat().st_size > 4 * MiB  # big.bin's data, nothing else of size
    flip_byte(pack, pack.stat().st_size // 2)
    return {"src": src, "other": other, "affected": {first, second}, "unaffected": third,
            "pack": pack.relative_to(vault.env.repo), "second": second,
            "repo": vault.env.repo}


@pytest.fixture
def damaged(vault, damaged_template: dict) -> dict:
    shutil.copytree(damaged_template["repo"], vault.env.repo, symlinks=True)
    return {**damaged_template, "pack": vault.env.repo / damaged_template["pack"]}


def test_verify_names_the_damaged_snapshots_and_paths(vault, damaged) -> None:
    big = str(damaged["src"] / "big.bin")
    human = vault.run("verify", "--read-data")
    assert human.returncode == 1, human.stderr
    for snapshot_id in damaged["affected"]:
        assert f"snapshot {snapshot_id[:8]} is damaged" in human.stdout
    assert damaged["unaffected"][:8] not in human.stdout
    assert big in human.stdout
    assert "small.txt" not in human.stdout
    assert "Traceback" not in human.stderr

    result = vault.json("verify", "--read-data")
    assert result.code == 1
    summary = result.summary
    assert summary["ok"] is False
    assert summary["corrupted"] == {sid: [big] for sid in damaged["affected"]}
    assert any(damaged["pack"].name[:12] in p for p in summary["problems"])


def test_the_journal_records_the_damaged_snapshots(vault, damaged) -> None:
    vault.run("verify", "--read-data")
    events = vault.events("SnapshotCorrupted")
    assert {e["payload"]["snapshot_id"] for e in events} == damaged["affected"]
    for e in events:
        assert e["payload"]["paths"] == [str(damaged["src"] / "big.bin")]
    completed = vault.events("VerifyCompleted")[-1]["payload"]
    assert completed["ok"] is False


def test_verify_without_read_data_does_not_see_a_flipped_byte(vault, damaged) -> None:
    """Structure checks compare sizes, not content: that is what --read-data is for."""
    assert vault.run("verify").returncode == 0


def test_unaffected_files_still_restore_identically(vault, damaged, fs,
                                                     tmp_path: Path) -> None:
    src = damaged["src"]
    by_path = tmp_path / "by-path"
    second = damaged["second"]
    vault.restore(second, str(src / "small.txt"), str(src / "sub"), "--target", by_path)
    copy = fs.restored_path(by_path, src)
    assert sorted(os.listdir(copy)) == ["small.txt", "sub"]
    assert fs.tree_meta(copy / "sub") == fs.tree_meta(src / "sub")
    assert fs.tree_meta(copy / "small.txt") == fs.tree_meta(src / "small.txt")

    by_include = tmp_path / "by-include"
    vault.restore(f"{second}:{src}", "--include", "*.txt", "--target", by_include)
    assert sorted(p.name for p in by_include.rglob("*") if p.is_file()) == [
        "later.txt", "other.txt", "small.txt"]
    assert (by_include / "small.txt").read_bytes() == (src / "small.txt").read_bytes()

    other = tmp_path / "other-out"
    vault.restore(f"{damaged['unaffected'][:8]}:{damaged['other']}", "--target", other)
    fs.assert_same_tree(damaged["other"], other, include_root=False)


def test_restoring_the_damaged_file_reports_it(vault, damaged, fs,
                                               tmp_path: Path) -> None:
    src = damaged["src"]
    target = tmp_path / "out"
    result = vault.json("restore", f"{damaged['second']}:{src}", "--target", target)
    assert result.code == 3, result.stderr
    problems = result.summary["problems"]
    assert [p["path"] for p in problems] == [str(target / "big.bin")]
    assert "integrity" in problems[0]["error"]
    # The damaged file is not passed off as restored: a full-size file with zeroed gaps
    # would look complete, so the partly written file is removed.
    assert not (target / "big.bin").exists()
    assert "removed" in problems[0]["error"]
    for name in ("small.txt", "later.txt", "sub/other.txt"):
        assert fs.tree_meta(target / name) == fs.tree_meta(src / name)
    restored = vault.events("RestoreCompleted")[-1]["payload"]
    assert [e["path"] for e in restored["errors"]] == [str(target / "big.bin")]


def test_dump_of_the_damaged_file_fails(vault, damaged) -> None:
    done = vault.run("dump", damaged["second"], str(damaged["src"] / "big.bin"),
                          binary=True)
    assert done.returncode == 1
    err = done.stderr.decode().strip()
    assert err.startswith("vault: error: integrity check failed")
    assert len(err.splitlines()) == 1


def test_a_missing_pack_is_traced_like_a_damaged_one(vault, damaged) -> None:
    damaged["pack"].unlink()
    result = vault.json("verify")
    assert result.code == 1
    summary = result.summary
    assert set(summary["corrupted"]) == damaged["affected"]
    assert any("missing" in p for p in summary["problems"])


def _damage_snapshot_file(vault, snapshot_id: str) -> None:
    snapshot_file = vault.env.repo / "snapshots" / snapshot_id
    flip_byte(snapshot_file, snapshot_file.stat().st_size // 2)


def test_verify_reports_a_damaged_snapshot_file(vault, damaged) -> None:
    _damage_snapshot_file(vault, damaged["unaffected"])
    done = vault.run("verify")
    assert done.returncode == 1
    assert f"snapshot {damaged['unaffected'][:12]}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_damaged_snapshot_file_does_not_hide_the_others(vault, damaged) -> None:
    _damage_snapshot_file(vault, damaged["unaffected"])
    listed = vault.json("snapshots")
    assert listed.code == 0, listed.last
    assert {s["id"] for s in listed.summary["snapshots"]} == damaged["affected"]
