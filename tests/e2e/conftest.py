"""Remote servers the end-to-end tests share, one per test module: moto (S3) and sshd
(SFTP), each skipped only when it cannot be installed, saying why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage_servers import S3Server, SshServer, moto_missing, moto_s3, sshd, sshd_missing


@pytest.fixture(scope="module")
def moto() -> Iterator[S3Server]:
    missing = moto_missing()
    if missing is not None:
        pytest.skip(missing)
    with moto_s3() as server:
        yield server


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    missing = sshd_missing()
    if missing is not None:
        pytest.skip(missing)
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
