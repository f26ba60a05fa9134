"""Deduplication: data the repository has is never stored again, even when shifted."""

from __future__ import annotations

from pathlib import Path

import pytest

MiB = 1 << 20


def _rebackup_grows_little(vault, fs, tmp_path: Path, size: int) -> None:
    src = tmp_path / "src"
    fs.write_random(src / "a.bin", size // 2, seed=1)
    fs.write_random(src / "b.bin", size - size // 2, seed=2)
    first = vault.backup(src)
    assert first["bytes_read"] == size
    after_first = fs.dir_size(vault.env.repo)
    assert after_first > size  # random data does not compress

    second = vault.backup(src, "--force")  # reread everything, ignore the files cache
    assert second["bytes_read"] == size
    assert second["files_new"] + second["files_changed"] == 2
    grown = fs.dir_size(vault.env.repo) - after_first
    assert grown < after_first // 100, f"the repository grew by {grown} bytes"
    assert second["bytes_new"] < size // 100

    target = tmp_path / "out"
    vault.restore(f"latest:{src}", "--target", target)
    fs.assert_same_tree(src, target, include_root=False)


def test_second_backup_of_the_same_data_adds_under_one_percent(vault_repo, fs,
                                                              tmp_path: Path) -> None:
    _rebackup_grows_little(vault_repo, fs, tmp_path, 20 * MiB)


@pytest.mark.slow
def test_second_backup_of_100_mib_adds_under_one_percent(vault_repo, fs,
                                                         tmp_path: Path) -> None:
    _rebackup_grows_little(vault_repo, fs, tmp_path, 100 * MiB)


def _insert_one_byte(vault, fs, tmp_path: Path, size: int, limit: int) -> None:
    src = tmp_path / "src"
    big = fs.write_random(src / "big.bin", size, seed=3)
    first = vault.backup(src)
    assert first["bytes_stored"] > size

    data = big.read_bytes()
    big.write_bytes(b"!" + data)
    second = vault.backup(src)
    assert second["files_changed"] == 1
    assert second["bytes_read"] == size + 1
    assert second["bytes_stored"] < limit, second
    assert second["bytes_new"] < limit, second

    out = tmp_path / "out"
    vault.restore(f"latest:{src}", "--target", out)
    assert fs.sha256_file(out / "big.bin") == fs.sha256_file(big)


def test_one_byte_inserted_at_the_start_stores_only_a_few_chunks(vault_repo, fs,
                                                                  tmp_path: Path) -> None:
    """Content-defined chunking: the insert moves the first boundary, the rest realign.
    With 1 MiB average chunks (max 4 MiB), a 16 MiB file costs under 5 MiB again."""
    _insert_one_byte(vault_repo, fs, tmp_path, 16 * MiB, 5 * MiB)


@pytest.mark.slow
def test_one_byte_inserted_at_the_start_of_50_mib(vault_repo, fs, tmp_path: Path) -> None:
    _insert_one_byte(vault_repo, fs, tmp_path, 50 * MiB, 10 * MiB)


def test_identical_files_in_one_backup_are_stored_once(vault_repo, fs, tmp_path: Path) -> None:
    src = tmp_path / "src"
    fs.write_random(src / "one.bin", 6 * MiB, seed=4)
    for name in ("two.bin", "sub/three.bin"):
        (src / name).parent.mkdir(exist_ok=True)
        (src / name).write_bytes((src / "one.bin").read_bytes())
    summary = vault_repo.backup(src)
    assert summary["bytes_raw"] == 18 * MiB
    assert summary["bytes_new"] < 7 * MiB
    assert fs.dir_size(vault_repo.env.repo) < 7 * MiB


def test_a_file_repeating_one_block_stores_it_once_and_restores(vault_repo, fs,
                                                                tmp_path: Path) -> None:
    """The same chunk at many offsets of one file: stored once, written everywhere."""
    src = tmp_path / "src"
    block = fs.write_random(tmp_path / "block", 1 * MiB, seed=9).read_bytes()
    src.mkdir()
    (src / "repeats.bin").write_bytes(block * 12 + b"tail")
    (src / "zeros.bin").write_bytes(bytes(6 * MiB))  # not sparse on disk
    summary = vault_repo.backup(src)
    assert summary["bytes_raw"] == 18 * MiB + 4
    # At worst one max-size (4 MiB) chunk of the pattern, and zeros compress to nothing.
    assert summary["bytes_stored"] < 5 * MiB, summary
    out = tmp_path / "out"
    vault_repo.restore(f"latest:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)
