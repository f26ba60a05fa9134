"""A repository on a full file system: a clear one-line error, and nothing lost.

The repository lives on a small tmpfs mounted for the test (skipped where mounting is
not permitted). vault checks the free space before storing anything: the bytes to read
plus a reserve that scales with the volume (1/32 of it, 1..64 MiB: docs/config.md), so a
fresh 64 MiB volume takes a small first backup. Running out of space *while* writing is
produced with a tmpfs that has bytes to spare but no inodes.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MiB = 1 << 20


def _mount(mnt: Path, options: str, remount: bool = False) -> None:
    opts = f"remount,{options}" if remount else options
    argv = ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): "
                    f"{done.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted: list[Path] = []

    def mount(options: str, *, remount: bool = False) -> Path:
        _mount(mnt, options, remount)
        if not remount:
            mounted.append(mnt)
        return mnt

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_repo_vault(vault, tmpfs) -> Callable[[str], object]:
    """A `vault` whose repository is on a tmpfs mounted with the given options."""

    def make(options: str):
        mnt = tmpfs(options)
        repo = mnt / "repo"
        env = dataclasses.replace(vault.env, repo=repo,
                                  env={**vault.env.env, "VAULT_REPOSITORY": str(repo)})
        cli = type(vault)(env)
        cli.init()
        return cli

    return make


def _one_line_error(done, *needles: str) -> None:
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("vault: error: ")
    for needle in needles:
        assert needle in err, err


def test_backup_that_cannot_fit_fails_before_writing(small_repo_vault, fs,
                                                     tmp_path: Path) -> None:
    vault = small_repo_vault("size=96m")
    small = tmp_path / "small"
    fs.write_random(small / "a.bin", 200_000, seed=1)
    (small / "b.txt").write_text("bee")
    first = vault.backup(small)["snapshot_id"]
    repo_before = fs.dir_digest(vault.env.repo)

    big = tmp_path / "big"
    fs.write_random(big / "huge.bin", 95 * MiB, seed=2)  # ~100 MB
    done = vault.run("backup", big)
    assert done.returncode == 1
    _one_line_error(done, "not enough space", str(vault.env.repo))
    assert "Traceback" not in done.stderr
    failed = vault.events("BackupFailed")[-1]["payload"]
    assert failed["error_kind"] == "NotEnoughSpace"
    assert fs.dir_digest(vault.env.repo) == repo_before  # checked first: nothing written

    assert vault.json("verify", "--read-data").code == 0
    out = tmp_path / "out"
    vault.restore(f"{first[:8]}:{small}", "--target", out)
    fs.assert_same_tree(small, out, include_root=False)

    # Free the space the backup needed (here: drop the big source) and back up again.
    shutil.rmtree(big)
    (small / "c.txt").write_text("added after the failure")
    assert vault.backup(small)["status"] == "completed"
    out_after = tmp_path / "out-after"
    vault.restore(f"latest:{small}", "--target", out_after)
    fs.assert_same_tree(small, out_after, include_root=False)


def test_a_small_volume_takes_a_small_first_backup(small_repo_vault, fs,
                                                  tmp_path: Path) -> None:
    """64 MiB: the reserve is 2 MiB (1/32), not the former fixed 64 MiB that refused even
    a 1 MB first backup; a backup that does not fit names its need and the reserve."""
    vault = small_repo_vault("size=64m")
    src = tmp_path / "src"
    original = fs.write_random(src / "one-mb.bin", 1_000_000, seed=7)
    assert vault.backup(src)["status"] == "completed"
    out = tmp_path / "out"
    vault.restore(f"latest:{src}", "--target", out)
    assert (out / "one-mb.bin").read_bytes() == original.read_bytes()

    fs.write_random(src / "big.bin", 70 * MiB, seed=8)
    done = vault.run("backup", src)
    assert done.returncode == 1
    _one_line_error(done, "not enough space", "need ~70.0 MiB + 2.0 MiB reserve, have ")
    assert vault.events("BackupFailed")[-1]["payload"]["error_kind"] == "NotEnoughSpace"

    # The reserve is a setting: a larger one is named in the error as set.
    config = vault.env.home / "config" / "vault" / "vault.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[repository]\nfree_space_reserve = "62MiB"\n')
    (src / "big.bin").unlink()
    fs.write_random(src / "two-mb.bin", 2 * MiB, seed=9)
    done = vault.run("backup", src)
    assert done.returncode == 1
    _one_line_error(done, "need ~2.0 MiB + 62.0 MiB reserve")


def test_running_out_of_space_while_writing(small_repo_vault, fs, tmp_path: Path) -> None:
    """ENOSPC from a pack save in a worker thread: one line, exit 1, the repository still
    verifies, the earlier snapshot restores, and once there is room a backup works."""
    vault = small_repo_vault("size=400m,nr_inodes=320")
    small = tmp_path / "small"
    (small / "file.txt").parent.mkdir()
    (small / "file.txt").write_text("kept safe")
    first = vault.backup(small)["snapshot_id"]
    used = sum(1 for _ in vault.env.repo.rglob("*"))
    # Leave room for a few more objects only: the lock and a pack or two.
    _mount(vault.env.repo.parent, f"nr_inodes={used + 3}", remount=True)

    big = tmp_path / "big"
    for i in range(4):
        fs.write_random(big / f"part{i}.bin", 10 * MiB, seed=10 + i)
    done = vault.run("backup", big)
    assert done.returncode == 1, done.stderr
    _one_line_error(done, "not enough space")
    assert not list(vault.env.repo.rglob(".tmp-*")), "a failed save left a temp file"
    assert vault.events("BackupFailed")[-1]["payload"]["error_kind"] == "NotEnoughSpace"

    verify = vault.json("verify", "--read-data")
    assert verify.code == 0, verify.last
    out = tmp_path / "out"
    vault.restore(f"{first[:8]}:{small}", "--target", out)
    fs.assert_same_tree(small, out, include_root=False)

    _mount(vault.env.repo.parent, "nr_inodes=10000", remount=True)
    summary = vault.backup(big)
    assert summary["status"] == "completed"
    out_big = tmp_path / "out-big"
    vault.restore(f"latest:{big}", "--target", out_big)
    fs.assert_same_tree(big, out_big, include_root=False)
