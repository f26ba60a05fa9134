"""`vault backup` options: --dry-run, --estimate, filters, tags."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def src(tmp_path: Path, fs) -> Path:
    root = tmp_path / "src"
    fs.write_random(root / "app" / "data.db", 300_000, seed=1)
    (root / "app" / "config.json").write_text('{"debug": false}')
    (root / "app" / "notes.md").write_text("# notes")
    fs.write_compressible(root / "logs" / "app.log", 200_000, seed=2)
    (root / "logs" / "debug.log").write_text("debug")
    fs.write_random(root / "cache" / "blob.tmp", 2_000_000, seed=3)
    fs.write_random(root / "node_modules" / "pkg" / "index.js", 1000, seed=4)
    (root / "README").write_text("readme")
    return root


def files_in_snapshot(vault, src: Path, ref: str = "latest") -> set[str]:
    entries = vault.query("ls", ref, str(src), "-R").summary["entries"]
    prefix = f"{src}/"
    return {e["path"].removeprefix(prefix) for e in entries if e["type"] == "file"}


ALL_FILES = {"app/data.db", "app/config.json", "app/notes.md", "logs/app.log",
             "logs/debug.log", "cache/blob.tmp", "node_modules/pkg/index.js", "README"}


def test_dry_run_writes_nothing_but_reports_what_it_would_store(vault_repo, fs,
                                                                 src: Path) -> None:
    repo_before = fs.dir_digest(vault_repo.env.repo)
    events_before = len(vault_repo.events())
    dry = vault_repo.backup(src, "--dry-run")
    assert (dry["dry_run"], dry["status"], dry["snapshot_id"]) == (True, "dry-run", None)
    assert dry["files_new"] == len(ALL_FILES)
    assert dry["bytes_raw"] == dry["bytes_read"] > 2_000_000
    assert fs.dir_digest(vault_repo.env.repo) == repo_before
    assert vault_repo.query("snapshots").summary["snapshots"] == []
    assert len(vault_repo.events()) == events_before

    human = vault_repo.ok("backup", src, "--dry-run")
    assert human.stdout.startswith("would store: 8 new")

    real = vault_repo.backup(src)
    assert real["files_new"] == len(ALL_FILES)  # the dry run taught the files cache nothing
    for key in ("bytes_raw", "bytes_read", "bytes_new", "blobs_new"):
        assert dry[key] == real[key], key
    assert abs(dry["bytes_stored"] - real["bytes_stored"]) < 1024


def test_estimate(vault_repo, fs, src: Path) -> None:
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    repo_before = fs.dir_digest(vault_repo.env.repo)
    first = vault_repo.json("backup", src, "--estimate").summary
    assert (first["files"], first["files_to_read"]) == (len(ALL_FILES), len(ALL_FILES))
    assert first["bytes_total"] == first["bytes_to_read"] == total
    assert first["based_on_snapshots"] == 0 and first["estimated_seconds"] is None
    assert fs.dir_digest(vault_repo.env.repo) == repo_before

    vault_repo.backup(src)
    assert vault_repo.json("backup", src, "--estimate").summary["bytes_to_read"] == 0
    (src / "app" / "notes.md").write_text("# notes, longer now")
    again = vault_repo.json("backup", src, "--estimate").summary
    assert (again["files_to_read"], again["bytes_to_read"]) == (1, 19)
    assert again["based_on_snapshots"] == 1
    assert 0 < again["estimated_new_bytes"] <= 19 * 2

    human = vault_repo.ok("backup", src, "--estimate").stdout
    assert "1 new or changed" in human


def test_excludes(vault_repo, src: Path, tmp_path: Path) -> None:
    exclude_file = tmp_path / "excludes"
    exclude_file.write_text("# generated stuff\n\nnode_modules\n  *.tmp  \n")
    vault_repo.backup(src, "--exclude", "*.log", "-e", f"{src}/app/notes.md",
                      "--exclude-file", exclude_file)
    assert files_in_snapshot(vault_repo, src) == {"app/data.db", "app/config.json", "README"}
    dirs = {e["path"] for e in vault_repo.query("ls", "latest", str(src)).summary["entries"]}
    assert f"{src}/node_modules" not in dirs  # an excluded dir is skipped whole
    assert f"{src}/logs" in dirs  # a dir whose files are all excluded is kept, empty


def test_includes_keep_only_matching_files(vault_repo, src: Path) -> None:
    vault_repo.backup(src, "--include", "*.json", "-i", "README")
    assert files_in_snapshot(vault_repo, src) == {"app/config.json", "README"}


def test_exclude_larger_than(vault_repo, src: Path) -> None:
    summary = vault_repo.backup(src, "--exclude-larger-than", "250K")
    assert files_in_snapshot(vault_repo, src) == ALL_FILES - {"app/data.db", "cache/blob.tmp"}
    assert summary["bytes_raw"] < 250_000
    vault_repo.backup(src, "--exclude-larger-than", "1MiB")
    assert files_in_snapshot(vault_repo, src) == ALL_FILES - {"cache/blob.tmp"}


def test_tags(vault_repo, src: Path) -> None:
    vault_repo.backup(src, "--tag", "nightly", "-t", "db", "--tag", "nightly")
    snap = vault_repo.query("snapshots").summary["snapshots"][0]
    assert snap["tags"] == ["db", "nightly"]
    completed = vault_repo.events("BackupCompleted")[0]["payload"]
    assert completed["tags"] == ["db", "nightly"]


def test_snapshot_records_its_filters(vault_repo, src: Path) -> None:
    vault_repo.backup(src, "-e", "*.log", "--exclude-larger-than", "1M")
    snap = vault_repo.query("snapshots").summary["snapshots"][0]
    assert snap["filters"]["excludes"] == ["*.log"]
    assert snap["filters"]["exclude_larger_than"] == 1 << 20
    assert snap["paths"] == [str(src)]
