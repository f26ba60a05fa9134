"""Back up a tree with every kind of entry, restore it, and get the same tree back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A name that is not valid UTF-8: Linux allows any bytes but "/" and NUL.
INVALID_UTF8 = os.fsdecode(b"latin1-caf\xe9-\xff\xfe.bin")
NS = 123_456_789  # sub-second part of every mtime we set


def build_tree(src: Path) -> None:
    """Unicode and undecodable names, empty files and dirs, nested dirs, symlinks of every
    flavour, a hard-linked pair, unusual modes and nanosecond mtimes."""
    (src / "día" / "sub" / "deeper").mkdir(parents=True)
    (src / "día" / "日本語 ñ.txt").write_text("こんにちは\n")
    (src / "emoji 🎉📦").mkdir()
    (src / "emoji 🎉📦" / "🐍.py").write_text("print('hi')\n")
    with open(os.path.join(os.fspath(src), INVALID_UTF8), "wb") as f:
        f.write(b"bytes behind an undecodable name\x00\xff")
    (src / "empty-file").touch()
    (src / "empty-dir").mkdir()
    (src / "día" / "sub" / "deeper" / "leaf.bin").write_bytes(os.urandom(300_000))
    (src / "spaces and\ttab").write_text("x")
    (src / "rel-link").symlink_to("día/日本語 ñ.txt")
    (src / "abs-link").symlink_to("/etc/hostname")
    (src / "dangling-link").symlink_to("does/not/exist")
    (src / "dir-link").symlink_to("día")
    (src / "hard-a").write_bytes(b"shared by two names\n" * 1000)
    os.link(src / "hard-a", src / "día" / "hard-b")
    (src / "secret.key").write_text("private")
    os.chmod(src / "secret.key", 0o600)
    (src / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(src / "run.sh", 0o755)
    (src / "private-dir").mkdir()
    (src / "private-dir" / "inside.txt").write_text("in a 0640 dir")
    (src / "sticky-ish").mkdir()
    os.chmod(src / "sticky-ish", 0o2750)
    set_mtimes(src)
    os.chmod(src / "private-dir", 0o640)  # last: no x bit, so nothing below is reachable


def set_mtimes(root: Path) -> None:
    """Distinct nanosecond mtimes everywhere, children before parents, links themselves."""
    stamp = 1_600_000_000
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            stamp += 1
            os.utime(os.path.join(dirpath, name), ns=(stamp * 10**9 + NS, stamp * 10**9 + NS),
                     follow_symlinks=False)
    os.utime(root, ns=(1_500_000_000 * 10**9 + NS,) * 2)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    build_tree(root)
    return root


def test_full_restore_is_identical(vault_repo, fs, src: Path, tmp_path: Path) -> None:
    """Every entry comes back with its type, mode, size, mtime (ns), link target and bytes.

    Hard links are restored as hard links: both names share one inode in the target.
    """
    summary = vault_repo.backup(src)
    assert summary["status"] == "completed"
    assert summary["problems"] == []
    assert summary["files_new"] == 11  # hard-a and hard-b are both files
    target = tmp_path / "out"
    restored = vault_repo.restore("latest", "--target", target)
    assert restored["problems"] == []
    copy = fs.restored_path(target, src)
    fs.assert_same_tree(src, copy)

    a, b = os.lstat(copy / "hard-a"), os.lstat(copy / "día" / "hard-b")
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert os.readlink(copy / "abs-link") == "/etc/hostname"
    assert os.readlink(copy / "dangling-link") == "does/not/exist"
    assert os.lstat(copy / "private-dir").st_mode & 0o777 == 0o640
    assert os.lstat(copy / "día" / "sub" / "deeper" / "leaf.bin").st_mtime_ns % 10**9 == NS
    assert os.fsencode(INVALID_UTF8) in os.listdir(os.fsencode(copy))


def test_restore_of_a_subtree_by_ref_and_by_path(vault_repo, fs, src: Path,
                                                  tmp_path: Path) -> None:
    """`latest:/src` restores the directory's contents straight into the target;
    a PATH argument restores only that subtree (at its full path)."""
    vault_repo.backup(src)
    by_ref = tmp_path / "by-ref"
    vault_repo.restore(f"latest:{src}", "--target", by_ref)
    fs.assert_same_tree(src, by_ref, include_root=False)

    by_path = tmp_path / "by-path"
    vault_repo.restore("latest", str(src / "día"), "--target", by_path)
    copy = fs.restored_path(by_path, src)
    fs.assert_same_tree(src / "día", copy / "día")
    assert sorted(os.listdir(copy)) == ["día"]


def test_restore_twice_into_the_same_target_is_still_identical(vault_repo, fs, src: Path,
                                                              tmp_path: Path) -> None:
    """A second restore over the first (overwrite=always) must not break links or modes."""
    vault_repo.backup(src)
    target = tmp_path / "out"
    vault_repo.restore(f"latest:{src}", "--target", target)
    vault_repo.restore(f"latest:{src}", "--target", target)
    fs.assert_same_tree(src, target, include_root=False)
    assert os.lstat(target / "hard-a").st_ino == os.lstat(target / "día" / "hard-b").st_ino


def test_changed_tree_restores_each_snapshot_as_it_was(vault_repo, fs, src: Path,
                                                      tmp_path: Path) -> None:
    before = fs.tree_meta(src)
    first = vault_repo.backup(src)["snapshot_id"]
    (src / "día" / "日本語 ñ.txt").write_text("changed\n")
    (src / "empty-file").unlink()
    (src / "new-file").write_bytes(b"new")
    vault_repo.backup(src)

    old, new = tmp_path / "old", tmp_path / "new"
    vault_repo.restore(f"{first[:8]}:{src}", "--target", old)
    vault_repo.restore(f"latest:{src}", "--target", new)
    assert fs.tree_meta(old, include_root=False) == {
        k: v for k, v in before.items() if k != "."}
    fs.assert_same_tree(src, new, include_root=False)


@pytest.mark.slow
def test_sparse_file_of_2_gib_restores_sparse_and_identical(vault_repo, fs,
                                                           tmp_path: Path) -> None:
    src = tmp_path / "sparse-src"
    src.mkdir()
    big = src / "disk.img"
    size = (2 << 30) + 12345
    with open(big, "wb") as f:
        f.truncate(size)
        for offset, data in [(0, b"MBR!"), (1 << 30, b"middle" * 100), (size - 7, b"the end")]:
            f.seek(offset)
            f.write(data)
    assert os.stat(big).st_blocks * 512 < 1 << 20  # the source really is sparse

    summary = vault_repo.backup(src)
    assert summary["bytes_raw"] == size
    assert summary["bytes_stored"] < 1 << 20  # zero chunks deduplicate to one blob
    target = tmp_path / "out"
    vault_repo.restore(f"latest:{src}", "--target", target)

    copy = target / "disk.img"
    st = os.stat(copy)
    assert st.st_size == size
    assert fs.sha256_file(copy) == fs.sha256_file(big)
    assert st.st_blocks * 512 < 64 << 20, "the restored file is not sparse"
    assert st.st_mtime_ns == os.stat(big).st_mtime_ns


def test_a_backup_path_that_is_not_utf8(vault_repo, fs, tmp_path: Path) -> None:
    src = os.path.join(os.fsencode(tmp_path), b"caf\xe9-dir")
    os.mkdir(src)
    with open(os.path.join(src, b"file"), "wb") as f:
        f.write(b"inside")
    summary = vault_repo.backup(os.fsdecode(src))
    assert summary["status"] == "completed"
    out = tmp_path / "out"
    vault_repo.restore(f"latest:{os.fsdecode(src)}", "--target", out)
    fs.assert_same_tree(os.fsdecode(src), out, include_root=False)
