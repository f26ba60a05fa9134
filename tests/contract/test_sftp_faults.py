"""The SFTP backend when the server drops the connection: the next attempt logs in again
(RetryingStorage around it), nothing is lost, and no temp file is left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage_servers import SshServer, sshd_missing
from vault.storage import open_storage


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
