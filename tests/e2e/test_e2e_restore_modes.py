"""File restores: every mode x conflict policy over a target that differs from the snapshot
(files deleted, changed, added), asserting the exact resulting tree and that `--dry-run`
predicted exactly what the real restore then did."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

Tree = dict[str, Any]  # relative path -> bytes (file) | ("link", target) | "dir"


def tree_of(root: Path) -> Tree:
    found: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_bytes()
    return found


@pytest.fixture
def scene(vault_repo, fs, tmp_path: Path) -> dict[str, Any]:
    """A snapshot of `src`, and a `base` target that differs from it in every way."""
    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "same.txt").write_bytes(b"identical on both sides\n")
    (src / "changed.txt").write_bytes(b"the snapshot's version\n")
    (src / "same-size.txt").write_bytes(b"AAAA")
    (src / "deleted.txt").write_bytes(b"lost from the target\n")
    (src / "sub" / "a.txt").write_bytes(b"a\n")
    (src / "sub" / "deep" / "gone.txt").write_bytes(b"gone\n")
    fs.write_random(src / "sub" / "big.bin", 1_500_000, seed=7)  # several chunks
    (src / "sub" / "link").symlink_to("a.txt")
    snapshot = vault_repo.backup(src)["snapshot_id"]

    base = tmp_path / "base"
    shutil.copytree(src, base, symlinks=True)
    (base / "changed.txt").write_bytes(b"the target's own, longer version\n")
    (base / "same-size.txt").write_bytes(b"BBBB")  # same size and length: content decides
    os.utime(base / "same-size.txt", ns=(1,) * 2)
    (base / "deleted.txt").unlink()
    shutil.rmtree(base / "sub" / "deep")
    big = bytearray((base / "sub" / "big.bin").read_bytes())
    big[1_000_000] ^= 0xFF
    (base / "sub" / "big.bin").write_bytes(bytes(big))
    (base / "sub" / "link").unlink()
    (base / "sub" / "link").symlink_to("elsewhere")
    (base / "added.txt").write_bytes(b"only in the target\n")
    (base / "extra" / "inner").mkdir(parents=True)
    (base / "extra" / "inner" / "only.txt").write_bytes(b"target only\n")
    return {"src": src, "snapshot": snapshot, "short": snapshot[:8], "base": base,
            "S": tree_of(src), "T": tree_of(base)}


CHANGED = ["changed.txt", "same-size.txt", "sub/big.bin", "sub/link"]
MISSING = ["deleted.txt", "sub/deep", "sub/deep/gone.txt"]
ADDED = ["added.txt", "extra", "extra/inner", "extra/inner/only.txt"]


def expected(scene: dict[str, Any], mode: str, policy: str) -> Tree:
    S, T = scene["S"], scene["T"]
    want = dict(T)
    for rel in MISSING:
        want[rel] = S[rel]
    for rel in CHANGED:
        if policy == "overwrite":
            want[rel] = S[rel]
        elif policy == "rename":
            want[f"{rel}.restored-{scene['short']}"] = S[rel]
    if mode == "overwrite":
        for rel in ADDED:
            del want[rel]
    return want


def plan_actions(plan: dict[str, Any]) -> dict[str, str]:
    return {i["key"].rstrip("/"): i["action"] for i in plan["items"]}


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
@pytest.mark.parametrize("policy", ["skip", "overwrite", "rename", "fail"])
def test_mode_and_policy(vault_repo, scene: dict[str, Any], tmp_path: Path, mode: str,
                         policy: str) -> None:
    target = tmp_path / "target"
    shutil.copytree(scene["base"], target, symlinks=True)
    args = ("restore", "--yes", f"{scene['snapshot']}:{scene['src']}", "--target", target,
            "--mode", mode, "--on-conflict", policy)
    dry = vault_repo.query(*args, "--dry-run")
    assert dry.code == 0, dry.stderr
    plan = dry.summary["plan"]
    assert tree_of(target) == scene["T"], "a dry run wrote something"

    actions = plan_actions(plan)
    for rel in MISSING:
        assert actions[rel] == "create", rel
    for rel in CHANGED:
        assert actions[rel] == {"fail": "conflict"}.get(policy, policy), rel
    for rel in ADDED:
        assert actions.get(rel) == ("delete" if mode == "overwrite" else None), rel
    for rel in ["same.txt", "sub", "sub/a.txt", "empty"]:
        assert actions[rel] == "skip", rel

    real = vault_repo.query(*args)
    if policy == "fail":
        assert real.code == 1, real.last
        assert real.last["type"] == "error" and "4 conflict(s)" in real.last["message"]
        assert tree_of(target) == scene["T"], "a refused restore wrote something"
        return
    assert real.code == 0, (real.last, real.stderr)
    assert real.summary["plan"] == plan, "the dry run did not predict the restore"
    assert tree_of(target) == expected(scene, mode, policy)
    report = real.summary["report"]["totals"]
    assert report == {"restored": plan["totals"]["create"] + plan["totals"][policy]
                      * (policy != "skip"),
                      "skipped": plan["totals"]["skip"],
                      "deleted": plan["totals"]["delete"], "failed": 0, "conflicts": 4}
    t = target
    paths = real.summary
    assert str(t / "deleted.txt") in paths["created"]
    if mode == "overwrite":
        assert sorted(paths["deleted"]) == sorted(str(t / r) for r in ADDED)
    if policy == "overwrite":
        assert str(t / "changed.txt") in paths["overwritten"]


@pytest.mark.parametrize("policy", ["skip", "overwrite", "rename", "fail"])
def test_new_target(vault_repo, scene: dict[str, Any], tmp_path: Path, policy: str) -> None:
    ref = f"{scene['snapshot']}:{scene['src']}"
    occupied = tmp_path / "occupied"
    shutil.copytree(scene["base"], occupied, symlinks=True)
    refused = vault_repo.query("restore", ref, "--target", occupied, "--mode", "new-target",
                               "--on-conflict", policy)
    assert refused.code == 2 and "not empty" in refused.last["message"], refused.last
    assert tree_of(occupied) == scene["T"]

    fresh = tmp_path / "fresh" / policy
    args = ("restore", ref, "--target", fresh, "--mode", "new-target", "--on-conflict", policy)
    dry = vault_repo.query(*args, "--dry-run")
    assert not fresh.exists()
    assert set(plan_actions(dry.summary["plan"]).values()) == {"create"}
    real = vault_repo.query(*args)
    assert real.code == 0, real.last
    assert real.summary["plan"] == dry.summary["plan"]
    assert tree_of(fresh) == scene["S"]


def test_overwrite_deletes_only_inside_the_selection(vault_repo, scene: dict[str, Any],
                                                    tmp_path: Path) -> None:
    """PATHS: only that subtree is made equal to the snapshot; -e keeps what it names."""
    target = tmp_path / "target"
    shutil.copytree(scene["base"], target, symlinks=True)
    (target / "sub" / "stray.txt").write_bytes(b"stray")
    (target / "sub" / "notes.keep").write_bytes(b"excluded: never touched")
    ref = f"{scene['snapshot']}:{scene['src']}"
    done = vault_repo.query("restore", "--yes", ref, "sub", "--target", target,
                            "--mode", "overwrite", "-e", "*.keep")
    assert done.code == 0, done.last
    result = tree_of(target)
    for rel, value in scene["S"].items():
        if rel.startswith("sub"):
            assert result[rel] == value, rel
    assert "sub/stray.txt" not in result
    assert result["sub/notes.keep"] == b"excluded: never touched"
    # outside sub/: exactly as it was (nothing created, changed or deleted)
    outside = {r: v for r, v in result.items() if not r.startswith("sub")}
    assert outside == {r: v for r, v in scene["T"].items() if not r.startswith("sub")}
    assert done.summary["deleted"] == [str(target / "sub" / "stray.txt")]


def test_a_directory_in_the_way_of_a_file_and_back(vault_repo, fs, tmp_path: Path) -> None:
    """overwrite mode: a target directory where the snapshot has a file (and a file where
    it has a directory) is deleted first; merge reports the clash and keeps the target."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x").write_bytes(b"x")
    (src / "f").write_bytes(b"file")
    # by id: after the overwrite, "latest" is that restore's pre-restore safety copy
    ref = f"{vault_repo.backup(src)['snapshot_id'][:8]}:{src}"
    target = tmp_path / "t"
    (target / "f").mkdir(parents=True)
    (target / "f" / "inside").write_bytes(b"i")
    (target / "d").write_bytes(b"a file where a dir was")
    merged = tmp_path / "merged"
    shutil.copytree(target, merged)

    done = vault_repo.query("restore", "--yes", ref, "-t", target, "--mode", "overwrite")
    assert done.code == 0, done.last
    assert tree_of(target) == tree_of(src)

    clash = vault_repo.query("restore", "--yes", ref, "-t", merged, "--mode", "merge")
    assert clash.code == 3, clash.last
    assert (merged / "d").read_bytes() == b"a file where a dir was"
    assert (merged / "f" / "inside").read_bytes() == b"i"
    assert clash.summary["report"]["totals"]["failed"] == 3  # d/, d/x, f


def test_report_is_journaled_and_printed(vault_repo, scene: dict[str, Any],
                                         tmp_path: Path) -> None:
    target = tmp_path / "target"
    shutil.copytree(scene["base"], target, symlinks=True)
    ref = f"{scene['snapshot']}:{scene['src']}"
    human = vault_repo.ok("restore", "--yes", ref, "-t", target, "--mode", "merge",
                          "--on-conflict", "rename")
    assert "directory" in human.stdout and "conflicts" in human.stdout
    total = [line.split() for line in human.stdout.splitlines() if line.startswith("total")]
    assert total == [["total", "7", "4", "0", "0", "4"]], human.stdout
    [reported] = vault_repo.events("RestoreReported")
    payload = reported["payload"]
    assert (payload["mode"], payload["on_conflict"]) == ("merge", "rename")
    assert (payload["restored"], payload["conflicts"], payload["failed"]) == (7, 4, 0)
    groups = {g["group"]: g for g in payload["groups"]}
    assert groups["sub"]["conflicts"] == 2 and groups["sub/deep"]["restored"] == 1
    [done] = vault_repo.events("RestoreCompleted")
    assert done["stream_id"] == reported["stream_id"]
