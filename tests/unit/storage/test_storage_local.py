"""Local-backend specifics the contract suite cannot express: layout, crash debris, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vault.errors import StorageError
from vault.storage.local import TEMP_PREFIX, LocalStorage


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    storage = LocalStorage(tmp_path / "nested" / "repo")
    storage.create()
    return storage


def test_create_makes_the_whole_layout(local: LocalStorage) -> None:
    top = sorted(p.name for p in local.root.iterdir())
    assert top == ["anchors", "condemned", "damaged", "data", "index", "keys", "locks",
                   "snapshots"]
    fan_out = sorted(p.name for p in (local.root / "data").iterdir())
    assert fan_out == [f"{i:02x}" for i in range(256)]


def test_data_objects_are_fanned_out_by_prefix(local: LocalStorage) -> None:
    local.save("data", "c0ffee", b"x")
    assert (local.root / "data" / "c0" / "c0ffee").read_bytes() == b"x"


def test_a_missing_fan_out_dir_is_recreated(local: LocalStorage) -> None:
    (local.root / "data" / "7f").rmdir()
    local.save("data", "7f00", b"still saved")
    assert local.load("data", "7f00") == b"still saved"
    assert oct((local.root / "data" / "7f").stat().st_mode & 0o777) == oct(0o700)


def test_save_into_a_missing_repository_fails_without_creating_it(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "never-created")
    with pytest.raises(StorageError) as caught:
        storage.save("data", "abcd", b"x")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "never-created").exists()


def test_os_errors_become_one_line_storage_errors(local: LocalStorage) -> None:
    (local.root / "index").rmdir()
    (local.root / "index").write_bytes(b"a file where a directory belongs")
    with pytest.raises(StorageError) as caught:
        local.save("index", "abcd", b"x")
    message = str(caught.value)
    assert message.startswith(f"storage {local.location}: cannot save index/abcd: ")
    assert "\n" not in message
    assert not caught.value.transient


def test_list_ignores_foreign_files_and_dirs(local: LocalStorage) -> None:
    (local.root / "snapshots" / "README").write_text("hello")
    (local.root / "snapshots" / "ABCD").write_text("upper case is not ours")
    (local.root / "snapshots" / "abcd.bak").write_text("editor debris")
    (local.root / "snapshots" / "ab12").mkdir()
    (local.root / "data" / "zz").mkdir()
    local.save("snapshots", "abcd", b"real")
    assert [i.name for i in local.list("snapshots")] == ["abcd"]
    assert list(local.list("data")) == []


def test_cleanup_removes_only_old_temp_files(local: LocalStorage) -> None:
    old = local.root / "data" / "ab" / f"{TEMP_PREFIX}0001"
    fresh = local.root / "locks" / f"{TEMP_PREFIX}0002"
    old.write_bytes(b"left by a killed process")
    fresh.write_bytes(b"a save still running elsewhere")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert local.cleanup_temp_files(max_age_seconds=600) == [old]
    assert not old.exists()
    assert fresh.exists()


CHILD_SAVER = """
import os, sys
from vault.storage.local import LocalStorage
storage = LocalStorage(sys.argv[1])
n = 0
while True:
    n += 1
    storage.save("data", f"{n:064x}", bytes([n % 256]) * (16 * 1024 * 1024))
"""


def test_a_killed_save_leaves_only_debris_that_list_ignores(local: LocalStorage) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD_SAVER, str(local.root)])
    try:
        deadline = time.monotonic() + 60
        while not list(local.root.rglob(f"{TEMP_PREFIX}*")):
            assert time.monotonic() < deadline, "the child never started a save"
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    for info in local.list("data"):
        n = int(info.name, 16)
        assert local.load("data", info.name) == bytes([n % 256]) * (16 * 1024 * 1024)
    debris = local.cleanup_temp_files(max_age_seconds=0)
    assert all(p.name.startswith(TEMP_PREFIX) for p in debris)
    assert not list(local.root.rglob(f"{TEMP_PREFIX}*"))
