"""Servers the contract suites run against, started once per session when a test asks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from cloud_servers import AzuriteServer, GcsEmulator, azurite, azurite_missing, gcs_emulator
from storage_servers import (
    S3Server,
    SshServer,
    moto_missing,
    moto_s3,
    rclone_binary,
    rclone_s3,
    sshd,
)


@pytest.fixture(scope="session")
def s3_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, S3Server]]:
    """Both S3 servers, started once per session (and only if an S3 test runs)."""
    started: dict[str, S3Server] = {}
    with ExitStack() as stack:
        if moto_missing() is None:
            started["moto"] = stack.enter_context(moto_s3())
        if rclone_binary() is not None:
            root = tmp_path_factory.mktemp("rclone-s3")
            started["rclone"] = stack.enter_context(rclone_s3(root / "served", root))
        yield started


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """OpenSSH's sshd on loopback, started once per session when an SFTP test runs."""
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite's blob service on loopback, started once per session when an Azure test
    runs (tests skip first when it is not installed: azurite_missing)."""
    assert azurite_missing() is None
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsEmulator]:
    """gcp-storage-emulator in a thread of this process, in memory, behind the XML API
    shim obstore talks to (tests/gcs_xml_shim.py)."""
    with gcs_emulator() as server:
        yield server
