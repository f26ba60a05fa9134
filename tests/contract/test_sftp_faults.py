"""The SFTP backend when the server drops the connection: the next attempt logs in again
(RetryingStorage around it), nothing is lost, and no temp file is left behind; the temp
files of killed saves are removed once older than their lease."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storage_servers import SshServer, sshd_missing
from vault.storage import ObjectKind, open_storage
from vault.storage.base import temp_file_cleaner


@pytest.fixture
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> SshServer:
    missing = sshd_missing()
    if missing is not None:
        pytest.skip(missing)
    found: SshServer = request.getfixturevalue("ssh_server")
    monkeypatch.setenv("HOME", str(found.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return found


def test_a_dropped_connection_is_reopened_and_nothing_is_lost(server: SshServer,
                                                              tmp_path: Path) -> None:
    storage = open_storage(server.url(tmp_path / "repo"))
    try:
        storage.create()
        first = os.urandom(3 * 1024 * 1024)
        storage.save("data", "aa" * 32, first)
        assert server.drop_connections() >= 1
        second = os.urandom(1024 * 1024)
        storage.save("data", "bb" * 32, second)  # on a new connection
        assert server.drop_connections() >= 1
        assert storage.load("data", "aa" * 32) == first
        assert {i.name for i in storage.list("data")} == {"aa" * 32, "bb" * 32}
        assert storage.load("data", "bb" * 32, 1000, 5000) == second[1000:6000]
    finally:
        storage.close()
    assert not list((tmp_path / "repo").rglob(".tmp-*"))


def test_temp_files_of_killed_saves_are_removed_once_older_than_the_lease(
        server: SshServer, tmp_path: Path) -> None:
    """Debris in every layout directory goes once old enough; a young temp file (a save
    still running elsewhere) and every object stay."""
    root = tmp_path / "repo"
    storage = open_storage(server.url(root))
    try:
        storage.create()
        kept: dict[tuple[ObjectKind, str], bytes] = {
            ("data", "ab" * 32): os.urandom(4096), ("index", "cd" * 32): b"index",
            ("snapshots", "ef" * 32): b"snapshot"}
        for (kind, name), data in kept.items():
            storage.save(kind, name, data)
        old = [root / ".tmp-0001", root / "data" / "ab" / ".tmp-0002",
               root / "data" / "ff" / ".tmp-0003", root / "locks" / ".tmp-0004"]
        young = root / "index" / ".tmp-0005"
        for path in [*old, young]:
            path.write_bytes(b"half a save")
        an_hour_ago = time.time() - 3600
        for path in old:
            os.utime(path, (an_hour_ago, an_hour_ago))

        cleaner = temp_file_cleaner(storage)  # under RetryingStorage
        assert cleaner is not None
        removed = cleaner.cleanup_temp_files(max_age_seconds=600)
        assert sorted(map(str, removed)) == sorted(map(str, old))
        assert sorted(p.name for p in root.rglob(".tmp-*")) == [young.name]
        for (kind, name), data in kept.items():
            assert storage.load(kind, name) == data
        assert cleaner.cleanup_temp_files(max_age_seconds=600) == []
    finally:
        storage.close()
