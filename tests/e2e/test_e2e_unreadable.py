"""Files the backup cannot read: exit 3, a partial snapshot that lists them, the rest safe.

Root reads everything whatever the mode bits, so vault runs as `nobody` (setpriv) with a
home and repository that user owns, backing up a tree where one file and one directory
belong to root with mode 0600/0700.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def nobody_base() -> Iterator[Path]:
    """A directory outside pytest's 0700 tmp tree, so `nobody` can reach it."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run vault as an unprivileged user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no `nobody` user")
    probe = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot switch users here: {probe.stderr.decode().strip()}")
    base = Path(tempfile.mkdtemp(prefix="vault-unreadable-"))
    os.chmod(base, 0o755)
    own = base / "nobody"
    own.mkdir()
    os.chown(own, nobody.pw_uid, nobody.pw_gid)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_unreadable_file_and_dir_make_a_partial_snapshot(vault, fs, nobody_base: Path) -> None:
    src = nobody_base / "src"
    fs.write_random(src / "data" / "readable.bin", 300_000, seed=1)
    (src / "notes.txt").write_text("readable notes")
    (src / "locked.db").write_text("root only")
    os.chmod(src / "locked.db", 0o600)
    (src / "private").mkdir()
    (src / "private" / "inside.txt").write_text("root only too")
    os.chmod(src / "private", 0o700)
    (src / "link").symlink_to("notes.txt")

    own = nobody_base / "nobody"
    home, repo = own / "home", own / "repo"
    env = dataclasses.replace(vault.env, root=own, repo=repo, home=home, env={
        **vault.env.env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"), "VAULT_REPOSITORY": str(repo)})
    nobody = type(vault)(env)
    assert nobody.run("init", user="nobody").returncode == 0

    result = nobody.json("backup", src, user="nobody")
    assert result.code == 3, (result.last, result.stderr)
    summary = result.summary
    assert summary["status"] == "partial"
    problems = {p["path"]: p["error"] for p in summary["problems"]}
    assert set(problems) == {str(src / "locked.db"), str(src / "private")}
    assert all("ermission denied" in e for e in problems.values())
    human = nobody.run("backup", src, user="nobody")
    assert human.returncode == 3
    assert str(src / "locked.db") in human.stderr + human.stdout

    snaps = nobody.json("snapshots", "--status", "partial", user="nobody").summary["snapshots"]
    assert len(snaps) == 2
    assert {e["path"] for e in snaps[0]["errors"]} == set(problems)
    completed = nobody.events("BackupCompleted")
    assert completed[0]["payload"]["status"] == "partial"

    target = own / "out"
    nobody.restore(f"latest:{src}", "--target", target, user="nobody")
    want = fs.tree_meta(src, include_root=False)
    got = fs.tree_meta(target, include_root=False)
    for gone in ("locked.db", "private/inside.txt"):
        del want[gone]
    assert got.keys() == want.keys()
    assert {k: v for k, v in got.items() if k != "private"} == {
        k: v for k, v in want.items() if k != "private"}
    assert os.listdir(target / "private") == []
