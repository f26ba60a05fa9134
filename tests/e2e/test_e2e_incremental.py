"""Incremental backups: unchanged files are not read again; changes are noticed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def src(tmp_path: Path, fs) -> Path:
    root = tmp_path / "src"
    for n in range(12):
        fs.write_random(root / f"dir{n % 3}" / f"file{n}.bin", 10_000 + n * 5_000, seed=n)
    fs.write_compressible(root / "log.txt", 600_000, seed=99)
    return root


FILES = 13


def test_unchanged_tree_reads_nothing(vault_repo, src: Path) -> None:
    first = vault_repo.backup(src)
    assert (first["files_new"], first["files_unmodified"]) == (FILES, 0)

    second = vault_repo.backup(src)
    assert second["bytes_read"] == 0
    assert second["files_unmodified"] == FILES
    assert second["files_new"] == second["files_changed"] == 0
    assert second["bytes_new"] < 4096  # at most the (unchanged) trees: nothing
    assert second["bytes_raw"] == first["bytes_raw"]


def test_one_modified_file_is_the_only_one_read(vault_repo, src: Path, tmp_path: Path,
                                                fs) -> None:
    vault_repo.backup(src)
    changed = src / "dir1" / "file4.bin"
    changed.write_bytes(b"new content" * 100)
    summary = vault_repo.backup(src)
    assert summary["files_changed"] == 1
    assert summary["files_unmodified"] == FILES - 1
    assert summary["files_new"] == 0
    assert summary["bytes_read"] == 1100

    snaps = vault_repo.query("snapshots").summary["snapshots"]
    assert [s["backup_type"] for s in snaps] == ["full", "incremental"]
    assert snaps[1]["parent"] == snaps[0]["id"]
    out = tmp_path / "out"
    vault_repo.restore(f"latest:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)


def test_same_size_and_restored_mtime_is_still_noticed(vault_repo, src: Path) -> None:
    """The ctime (and inode) are in the files cache key: resetting the mtime after an
    edit of the same size does not hide the change."""
    vault_repo.backup(src)
    victim = src / "dir0" / "file0.bin"
    before = os.stat(victim)
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    summary = vault_repo.backup(src)
    assert summary["files_changed"] == 1
    assert summary["bytes_read"] == before.st_size


def test_new_and_deleted_files(vault_repo, src: Path) -> None:
    vault_repo.backup(src)
    (src / "dir2" / "file2.bin").unlink()
    (src / "added.txt").write_text("added")
    summary = vault_repo.backup(src)
    assert (summary["files_new"], summary["files_changed"]) == (1, 0)
    assert summary["files_unmodified"] == FILES - 1
    assert summary["bytes_read"] == 5


def test_force_rereads_everything_but_stores_nothing_new(vault_repo, src: Path) -> None:
    first = vault_repo.backup(src)
    forced = vault_repo.backup(src, "--force")
    assert forced["bytes_read"] == first["bytes_raw"]
    assert forced["files_unmodified"] == 0
    # No data is new; at most the trees of src's parents, whose mtimes change while
    # other tests (under xdist) create directories beside this one.
    assert forced["bytes_new"] < 2048, forced


def test_deleting_the_files_cache_costs_a_reread_never_data(vault_repo, src: Path,
                                                             tmp_path: Path, fs) -> None:
    vault_repo.backup(src)
    for path in vault_repo.env.cache_dir.rglob("files.db*"):
        path.unlink()
    summary = vault_repo.backup(src)
    # No data is new. Only directory metadata may be: the parents of src are snapshotted
    # too, and under xdist other tests keep creating directories beside this one.
    assert summary["bytes_read"] > 0 and summary["bytes_new"] < 2048, summary
    out = tmp_path / "out"
    vault_repo.restore(f"latest:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)


def test_undecodable_name_is_not_read_again(vault_repo, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(os.path.join(os.fsencode(src), b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    assert vault_repo.backup(src)["files_new"] == 1
    assert vault_repo.backup(src)["bytes_read"] == 0
