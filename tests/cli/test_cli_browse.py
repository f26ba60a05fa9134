"""Looking into a repository: snapshots, ls, diff, dump, stats, locks, status; forget."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def src(tmp_path: Path, fs) -> Path:
    root = tmp_path / "src"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha\n")
    (root / "docs" / "b.txt").write_text("beta\n")
    fs.write_random(root / "blob.bin", 3_500_000, seed=7)
    (root / "link").symlink_to("docs/a.txt")
    (root / "will-be-dir").write_text("a file first")
    (root / "mode.sh").write_text("#!/bin/sh\n")
    return root


def snapshot_ids(vault, *args: str) -> list[str]:
    return [s["id"] for s in vault.query("snapshots", *args).summary["snapshots"]]


def test_snapshots_filter_and_sort(vault_repo, fs, tmp_path: Path) -> None:
    sizes = {"small": 1_000, "big": 300_000, "medium": 50_000}
    tags = {"small": ["daily"], "big": ["daily", "weekly"], "medium": ["weekly"]}
    ids = {}
    for name, size in sizes.items():
        fs.write_random(tmp_path / name / "f.bin", size, seed=size)
        tag_args = [a for t in tags[name] for a in ("--tag", t)]
        ids[name] = vault_repo.backup(tmp_path / name, *tag_args)["snapshot_id"]

    assert snapshot_ids(vault_repo) == [ids["small"], ids["big"], ids["medium"]]
    assert snapshot_ids(vault_repo, "--sort", "size") == [ids["small"], ids["medium"],
                                                          ids["big"]]
    assert snapshot_ids(vault_repo, "--sort", "size", "--tag", "daily") == [ids["small"],
                                                                            ids["big"]]
    assert snapshot_ids(vault_repo, "--sort", "size", "--tag", "weekly", "--reverse") == [
        ids["big"], ids["medium"]]
    assert snapshot_ids(vault_repo, "--tag", "daily", "--tag", "weekly") == [ids["big"]]
    assert snapshot_ids(vault_repo, "--sort", "name") == [ids["big"], ids["medium"],
                                                          ids["small"]]
    assert snapshot_ids(vault_repo, "--path", str(tmp_path / "medium")) == [ids["medium"]]
    assert snapshot_ids(vault_repo, "--host", "no-such-host") == []
    assert snapshot_ids(vault_repo, "--until", "2000-01-01") == []
    assert len(snapshot_ids(vault_repo, "--since", "2000-01-01T00:00+00:00")) == 3

    table = vault_repo.ok("snapshots", "--tag", "weekly").stdout.splitlines()
    assert table[0].split() == ["id", "time", "host", "tags", "source", "paths", "size",
                                "status"]
    assert len(table) == 4 and ids["big"][:8] in table[2] + table[3]


def test_ls(vault_repo, src: Path) -> None:
    vault_repo.backup(src)
    top = vault_repo.json("ls", "latest", str(src)).summary["entries"]
    assert [e["path"].removeprefix(f"{src}/") for e in top] == [
        "blob.bin", "docs", "link", "mode.sh", "will-be-dir"]
    by_path = {e["path"].removeprefix(f"{src}/"): e for e in top}
    assert by_path["blob.bin"]["size"] == 3_500_000
    assert by_path["link"]["type"] == "symlink" and by_path["link"]["link_target"] == "docs/a.txt"
    assert by_path["docs"]["type"] == "dir"

    recursive = vault_repo.json("ls", "latest", str(src), "-R").summary["entries"]
    assert {e["path"] for e in recursive} == {e["path"] for e in top} | {
        f"{src}/docs/a.txt", f"{src}/docs/b.txt"}

    human = vault_repo.ok("ls", f"latest:{src}", "-R").stdout.splitlines()
    assert any(line.endswith(f"{src}/docs/") and line.startswith("drwx") for line in human)
    assert any(line.endswith(f"{src}/link -> docs/a.txt") for line in human)
    assert any(line.startswith("-rw-r--r--") and "3.3 MiB" in line for line in human)
    root = vault_repo.ok("ls", "latest").stdout.splitlines()
    assert [line.split()[-1] for line in root] == [f"/{src.parts[1]}/"]


def test_diff(vault_repo, src: Path) -> None:
    first = vault_repo.backup(src)["snapshot_id"]
    (src / "docs" / "b.txt").write_text("beta, edited\n")  # M
    (src / "docs" / "new.txt").write_text("new\n")  # +
    (src / "blob.bin").unlink()  # -
    (src / "will-be-dir").unlink()
    (src / "will-be-dir").mkdir()  # T
    (src / "will-be-dir" / "inner").write_text("inner")
    os.chmod(src / "mode.sh", 0o755)  # U
    second = vault_repo.backup(src)["snapshot_id"]

    summary = vault_repo.json("diff", first[:8], second[:8]).summary
    changes = {(c["change"], c["path"].removeprefix(str(src))) for c in summary["changes"]}
    assert changes == {("M", "/docs/b.txt"), ("+", "/docs/new.txt"), ("-", "/blob.bin"),
                       ("T", "/will-be-dir"), ("U", "/mode.sh")}
    assert summary["counts"] == {"+": 1, "-": 1, "M": 1, "T": 1, "U": 1}

    human = vault_repo.ok("diff", first, second)
    assert f"M  {src}/docs/b.txt" in human.stdout.splitlines()
    assert f"+  {src}/docs/new.txt" in human.stdout.splitlines()
    assert f"-  {src}/blob.bin" in human.stdout.splitlines()
    assert "1 added, 1 removed, 1 modified" in human.stderr
    assert vault_repo.json("diff", first, first).summary["changes"] == []


def test_dump(vault_repo, src: Path, tmp_path: Path) -> None:
    vault_repo.backup(src)
    for path, original in [(f"{src}/blob.bin", src / "blob.bin"),
                           (f"{src}/docs/a.txt", src / "docs" / "a.txt")]:
        out = tmp_path / "out.bin"
        with open(out, "wb") as f:
            done = vault_repo.run("dump", "latest", path, binary=True)
            f.write(done.stdout)
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == original.read_bytes()
    by_ref = vault_repo.run("dump", f"latest:{src}/docs", "b.txt", binary=True)
    assert by_ref.stdout == b"beta\n"
    not_a_file = vault_repo.run("dump", "latest", f"{src}/docs")
    assert not_a_file.returncode == 2 and "is a dir, not a file" in not_a_file.stderr


def test_forget(vault_repo, fs, src: Path, tmp_path: Path) -> None:
    first = vault_repo.backup(src)["snapshot_id"]
    (src / "docs" / "a.txt").write_text("changed\n")
    second = vault_repo.backup(src)["snapshot_id"]

    result = vault_repo.json("forget", first[:10])
    assert result.code == 0 and result.summary["removed"] == [first]
    assert snapshot_ids(vault_repo) == [second]
    forgotten = vault_repo.events("SnapshotForgotten")
    assert [e["payload"]["snapshot_id"] for e in forgotten] == [first]
    again = vault_repo.run("forget", first)
    assert again.returncode == 1 and "no snapshot matches" in again.stderr

    out = tmp_path / "out"
    vault_repo.restore(f"latest:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)
    assert vault_repo.json("verify", "--read-data").code == 0


def test_stats(vault_repo, src: Path) -> None:
    vault_repo.backup(src)
    shutil.copytree(src, src.parent / "copy", symlinks=True)
    vault_repo.backup(src.parent / "copy")
    stats = vault_repo.json("stats").summary
    assert stats["snapshots"] == 2
    raw = sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    assert stats["logical_bytes"] == 2 * raw
    assert stats["dedup_ratio"] > 1.9  # the copy costs (almost) nothing
    assert stats["stored_bytes"] == sum(
        p.stat().st_size for p in (vault_repo.env.repo / "data").rglob("*") if p.is_file())
    assert [s["bytes_raw"] for s in stats["per_snapshot"]] == [raw, raw]


def test_locks_and_status(vault_repo, src: Path) -> None:
    assert vault_repo.json("locks").summary["locks"] == []
    status = vault_repo.json("status").summary
    assert status["initialised"] is True and status["last_backup"] is None
    snapshot = vault_repo.backup(src)["snapshot_id"]
    status = vault_repo.json("status").summary
    assert status["last_backup"]["snapshot_id"] == snapshot
    assert vault_repo.json("locks").summary["locks"] == []  # released after the backup


def test_verify_subsets_cover_every_pack(vault_repo, fs, tmp_path: Path) -> None:
    for i in range(3):
        fs.write_random(tmp_path / f"s{i}" / "f.bin", 200_000, seed=i)
        vault_repo.backup(tmp_path / f"s{i}")
    packs = sum(1 for p in (vault_repo.env.repo / "data").rglob("*") if p.is_file())
    halves = [vault_repo.json("verify", "--read-data-subset", f"{n}/2").summary
              for n in (1, 2)]
    assert sum(h["packs_checked"] for h in halves) == packs
    assert all(h["ok"] for h in halves)
    everything = vault_repo.json("verify", "--read-data-subset", "100%").summary
    assert everything["packs_checked"] == packs
    some = vault_repo.json("verify", "--read-data-subset", "1K").summary
    assert 1 <= some["packs_checked"] <= packs
    structure_only = vault_repo.json("verify").summary
    assert structure_only["packs_checked"] == 0 and structure_only["snapshots_checked"] == 3
