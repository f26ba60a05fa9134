"""Files the backup cannot read: exit 3, a partial snapshot that lists them, the rest safe.

Root reads everything whatever the mode bits, so vault runs as root without the
capabilities that allow it (`WITHOUT_DAC`: no CAP_DAC_OVERRIDE, no CAP_DAC_READ_SEARCH),
backing up a tree where one file and one directory belong to another user with mode
0600/0700. It stays root otherwise, so it reaches the checkout's venv and the test's
tmp_path even when the checkout is cloned into a private (0700) directory, which another
user (`nobody`, as this test once ran vault) cannot enter.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from privileges import WITHOUT_DAC

#: the owner of the files vault must not read (any uid but root's would do)
try:
    OTHER_UID = pwd.getpwnam("nobody").pw_uid
except KeyError:
    OTHER_UID = 65534


@pytest.fixture
def without_dac(tmp_path: Path) -> None:
    """Skip unless this process can run a command bound by file modes despite being root."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run vault without root's file access")
    probe = tmp_path / "probe"
    probe.write_text("not for you")
    os.chown(probe, OTHER_UID, -1)
    os.chmod(probe, 0o600)
    result = subprocess.run([*WITHOUT_DAC, "cat", str(probe)], capture_output=True, check=False)
    probe.unlink()
    if result.returncode == 0 or b"ermission denied" not in result.stderr:
        pytest.skip(f"setpriv cannot drop root's file access here: {result.stderr!r}")


def _foreign(path: Path, mode: int) -> None:
    os.chown(path, OTHER_UID, -1)
    os.chmod(path, mode)


def test_unreadable_file_and_dir_make_a_partial_snapshot(
        vault, fs, tmp_path: Path, without_dac: None) -> None:
    src = tmp_path / "src"
    fs.write_random(src / "data" / "readable.bin", 300_000, seed=1)
    (src / "notes.txt").write_text("readable notes")
    (src / "locked.db").write_text("another user's only")
    _foreign(src / "locked.db", 0o600)
    (src / "private").mkdir()
    (src / "private" / "inside.txt").write_text("another user's only too")
    _foreign(src / "private", 0o700)
    (src / "link").symlink_to("notes.txt")

    assert vault.run("init", unprivileged=True).returncode == 0

    result = vault.json("backup", src, unprivileged=True)
    assert result.code == 3, (result.last, result.stderr)
    summary = result.summary
    assert summary["status"] == "partial"
    problems = {p["path"]: p["error"] for p in summary["problems"]}
    assert set(problems) == {str(src / "locked.db"), str(src / "private")}
    assert all("ermission denied" in e for e in problems.values())
    human = vault.run("backup", src, unprivileged=True)
    assert human.returncode == 3
    assert str(src / "locked.db") in human.stderr + human.stdout

    snaps = vault.json("snapshots", "--status", "partial", unprivileged=True).summary["snapshots"]
    assert len(snaps) == 2
    assert {e["path"] for e in snaps[0]["errors"]} == set(problems)
    completed = vault.events("BackupCompleted")
    assert completed[0]["payload"]["status"] == "partial"

    target = tmp_path / "out"
    vault.restore(f"latest:{src}", "--target", target, unprivileged=True)
    want = fs.tree_meta(src, include_root=False)
    got = fs.tree_meta(target, include_root=False)
    for gone in ("locked.db", "private/inside.txt"):
        del want[gone]
    assert got.keys() == want.keys()
    assert {k: v for k, v in got.items() if k != "private"} == {
        k: v for k, v in want.items() if k != "private"}
    assert os.listdir(target / "private") == []
    assert (target / "data" / "readable.bin").read_bytes() == (
        src / "data" / "readable.bin").read_bytes()
