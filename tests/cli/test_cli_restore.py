"""`vault restore` options: overwrite policies, sub-tree refs and PATHs, filters, dry run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def src(tmp_path: Path, fs) -> Path:
    root = tmp_path / "src"
    (root / "etc" / "app").mkdir(parents=True)
    (root / "etc" / "app" / "app.conf").write_text("port = 8080\n")
    (root / "etc" / "app" / "secrets.env").write_text("TOKEN=abc\n")
    (root / "var" / "db").mkdir(parents=True)
    fs.write_random(root / "var" / "db" / "main.db", 2_500_000, seed=5)
    (root / "var" / "db" / "main.db-wal").write_bytes(b"wal")
    (root / "README").write_text("readme\n")
    os.utime(root / "README", ns=(1_600_000_000_111_222_333,) * 2)
    return root


@pytest.fixture
def snapshot(vault_repo, src: Path) -> str:
    return vault_repo.backup(src)["snapshot_id"]


def relative_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def test_overwrite_policies(vault_repo, src: Path, snapshot: str, tmp_path: Path) -> None:
    """always: rewrite every file; never: keep what is there; if-changed: rewrite unless
    size and mtime already match (content is not compared: that is the point of it)."""
    readme_mtime = os.stat(src / "README").st_mtime_ns

    def prepare(name: str) -> Path:
        target = tmp_path / name
        (target / "etc" / "app").mkdir(parents=True)
        # Same size and mtime as in the snapshot, different bytes: if-changed trusts it.
        (target / "README").write_text("README\n")
        os.utime(target / "README", ns=(readme_mtime, readme_mtime))
        (target / "etc" / "app" / "app.conf").write_text("port = 1\n")  # differs
        (target / "unrelated.txt").write_text("mine")  # not in the snapshot
        return target

    expected = {
        "always": ("readme\n", "port = 8080\n", 0),
        "never": ("README\n", "port = 1\n", 2),
        "if-changed": ("README\n", "port = 8080\n", 1),
    }
    for policy, (readme, conf, skipped) in expected.items():
        target = prepare(policy)
        summary = vault_repo.restore("--yes", f"{snapshot}:{src}", "--target", target,
                                     "--overwrite", policy)
        assert (target / "README").read_text() == readme, policy
        assert (target / "etc" / "app" / "app.conf").read_text() == conf, policy
        assert (target / "unrelated.txt").read_text() == "mine", policy
        assert (target / "var" / "db" / "main.db").read_bytes() == (
            src / "var" / "db" / "main.db").read_bytes()
        assert summary["files_skipped"] == skipped, policy
        assert summary["files_restored"] == 5 - skipped, policy


def test_default_policy_is_always(vault_repo, src: Path, snapshot: str, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "README").write_text("old")
    vault_repo.restore("--yes", f"{snapshot}:{src}", "--target", target)
    assert (target / "README").read_text() == "readme\n"


def test_subtree_ref_and_paths(vault_repo, fs, src: Path, snapshot: str,
                               tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    vault_repo.restore(f"latest:{src}/etc/app", "--target", sub)
    fs.assert_same_tree(src / "etc" / "app", sub, include_root=False)

    relative_ref = tmp_path / "relative-ref"
    vault_repo.restore(f"{snapshot[:8]}:{str(src).lstrip('/')}/var", "--target", relative_ref)
    assert relative_files(relative_ref) == {"db/main.db", "db/main.db-wal"}

    paths = tmp_path / "paths"
    vault_repo.restore(f"latest:{src}", "etc/app/app.conf", "/var/db", "--target", paths)
    assert relative_files(paths) == {"etc/app/app.conf", "var/db/main.db",
                                     "var/db/main.db-wal"}
    assert fs.tree_meta(paths / "var" / "db") == fs.tree_meta(src / "var" / "db")

    absolute = tmp_path / "absolute"
    vault_repo.restore("latest", str(src / "README"), "--target", absolute)
    assert relative_files(absolute) == {str(src.relative_to("/") / "README")}


def test_include_and_exclude(vault_repo, src: Path, snapshot: str, tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    vault_repo.restore(f"latest:{src}", "--include", "*.conf", "-i", "README", "--target", inc)
    assert relative_files(inc) == {"etc/app/app.conf", "README"}

    exc = tmp_path / "exc"
    vault_repo.restore(f"latest:{src}", "--exclude", "*.env", "-e", "db", "--target", exc)
    assert relative_files(exc) == {"etc/app/app.conf", "README"}
    assert not (exc / "var" / "db").exists()


def test_dry_run_writes_nothing(vault_repo, fs, src: Path, snapshot: str,
                                tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    summary = vault_repo.restore(f"latest:{src}", "--target", fresh, "--dry-run")
    assert summary["dry_run"] is True
    assert summary["files_restored"] == 5 and summary["symlinks"] == 0
    assert not fresh.exists()
    human = vault_repo.ok("restore", f"latest:{src}", "--target", fresh, "-n")
    assert human.stdout.startswith("would restore 5 files")
    assert not fresh.exists()

    existing = tmp_path / "existing"
    (existing / "etc").mkdir(parents=True)
    (existing / "README").write_text("mine")
    before = fs.tree_meta(existing)
    skipped = vault_repo.restore(f"latest:{src}", "--target", existing, "--dry-run",
                                 "--overwrite", "never")
    assert skipped["files_skipped"] == 1 and skipped["files_restored"] == 4
    assert fs.tree_meta(existing) == before
    assert vault_repo.events("RestoreRequested") == []  # a dry run is not a job


def test_restore_is_journaled(vault_repo, src: Path, snapshot: str, tmp_path: Path) -> None:
    target = tmp_path / "t"
    summary = vault_repo.restore(f"latest:{src}", "--target", target)
    events = vault_repo.events("RestoreRequested", "RestoreStarted", "RestoreCompleted")
    assert [e["type"] for e in events] == ["RestoreRequested", "RestoreStarted",
                                           "RestoreCompleted"]
    assert {e["stream_id"] for e in events} == {summary["job_id"]}
    done = events[-1]["payload"]
    assert (done["snapshot_id"], done["target"]) == (snapshot, str(target))
    assert done["files_restored"] == 5 and done["errors"] == []
    assert done["bytes_written"] == summary["bytes_written"] == sum(
        p.stat().st_size for p in src.rglob("*") if p.is_file())


def test_restore_into_a_relative_target(vault_repo, src: Path, snapshot: str,
                                        tmp_path: Path) -> None:
    vault_repo.restore(f"latest:{src}/etc", "--target", "rel/out", cwd=tmp_path)
    assert (tmp_path / "rel" / "out" / "app" / "app.conf").read_text() == "port = 8080\n"


def test_a_file_where_the_snapshot_has_a_directory(vault_repo, fs, src: Path, snapshot: str,
                                                   tmp_path: Path) -> None:
    """target/etc is a regular file; the snapshot has a directory etc/ with files below.
    The clash is reported (exit 3), the file is left alone and the rest is restored."""
    target = tmp_path / "t"
    target.mkdir()
    (target / "etc").write_text("a file, not a directory")
    result = vault_repo.json("restore", f"latest:{src}", "--target", target)
    assert result.code == 3, (result.last, result.stderr)
    assert "internal error" not in result.stderr
    assert str(target / "etc") in [p["path"] for p in result.summary["problems"]]
    assert (target / "etc").read_text() == "a file, not a directory"
    fs.assert_same_tree(src / "var", target / "var")
    assert (target / "README").read_text() == "readme\n"


def test_a_target_that_is_a_file_is_a_clear_error(vault_repo, src: Path, snapshot: str,
                                                  tmp_path: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("x")
    done = vault_repo.run("restore", f"latest:{src}", "--target", not_a_dir)
    assert done.returncode in (1, 2), done.stderr
    err = done.stderr.strip()
    assert err.startswith("vault: error: ") and len(err.splitlines()) == 1, err
    assert str(not_a_dir) in err
    assert not_a_dir.read_text() == "x"
