"""Repository locks on S3, Azure Blob (Azurite) and GCS (gcp-storage-emulator through the
XML API shim), between clients that share nothing but the bucket (as two hosts would):
conditional creates where the server enforces them, the list-and-check protocol
everywhere, stale locks of a dead host removed by their lease."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import obstore
import pytest

from cloud_servers import AzuriteServer, GcsEmulator, azurite_missing, gcs_emulator_missing
from storage_servers import BUCKET, S3Server
from vault.config.secrets import Secret
from vault.errors import RepositoryLocked
from vault.repository.lock import LockInfo, LockLost, RepositoryLock, list_locks
from vault.storage.azure import AzureSettings, AzureStorage
from vault.storage.base import ConditionalCreate
from vault.storage.cloud import ObjectStoreStorage
from vault.storage.gcs import GcsSettings, GcsStorage
from vault.storage.s3 import S3Settings, S3Storage

SERVERS = ["moto", "rclone", "azurite", "gcs-emulator"]


@dataclass(frozen=True)
class LockServer:
    """An object store the lock tests run against: an S3 server, Azurite or the GCS
    emulator."""

    name: str
    enforces_conditional_put: bool
    connect: Callable[[str], ObjectStoreStorage]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> LockServer:
    if request.param == "azurite":
        missing = azurite_missing()
        if missing is not None:
            pytest.skip(missing)
        azure: AzuriteServer = request.getfixturevalue("azurite_server")
        return LockServer("azurite", True, lambda prefix: AzureStorage(AzureSettings(
            container=azure.container, prefix=prefix, endpoint=azure.endpoint,
            account=azure.account, account_key=Secret(azure.key), sas_token=None,
            use_emulator=False)))
    if request.param == "gcs-emulator":
        return _gcs_lock_server(request)
    s3_servers: dict[str, S3Server] = request.getfixturevalue("s3_servers")
    if request.param not in s3_servers:
        pytest.skip(f"{request.param} cannot be installed here (scripts/test.sh installs it)")
    s3 = s3_servers[request.param]
    return LockServer(s3.name, s3.enforces_conditional_put, lambda prefix: S3Storage(
        S3Settings(bucket=BUCKET, prefix=prefix, endpoint=s3.endpoint, region="us-east-1",
                   access_key_id=s3.access_key, secret_access_key=s3.secret_key)))


def _gcs_lock_server(request: pytest.FixtureRequest) -> LockServer:
    missing = gcs_emulator_missing()
    if missing is not None:  # the one reason to skip: the emulator cannot be installed
        pytest.skip(missing)
    gcs: GcsEmulator = request.getfixturevalue("gcs_server")
    # gcp-storage-emulator ignores ifGenerationMatch (the shim passes it on): the probe
    # must see that and choose the create-then-list-then-check protocol, as for rclone.
    return LockServer("gcs-emulator", False, lambda prefix: GcsStorage(GcsSettings(
        bucket=gcs.bucket, prefix=prefix, endpoint=None, service_account_path=None,
        service_account_key=Secret(gcs.service_account_key()))))


def client(server: LockServer, prefix: str) -> ObjectStoreStorage:
    """A separate client (its own connection pool and probe), as on another host."""
    return server.connect(prefix)


def all_keys(storage: ObjectStoreStorage) -> list[str]:
    return sorted(str(m["path"]) for chunk in obstore.list(storage._store) for m in chunk)


@pytest.fixture
def prefix() -> str:
    return f"locks-{secrets.token_hex(6)}"


def test_the_probe_tells_which_servers_enforce_conditional_puts(server: LockServer,
                                                               prefix: str) -> None:
    storage = client(server, prefix)
    assert isinstance(storage, ConditionalCreate)
    assert storage.enforces_conditional_put() is server.enforces_conditional_put
    assert all_keys(storage) == []  # the probe object is gone again

    first = storage.save_new("locks", "aa01", b"first")
    assert first is not None
    second = storage.save_new("locks", "aa01", b"second")
    if server.enforces_conditional_put:
        assert second is None
        assert storage.load("locks", "aa01") == b"first"
        # If-Match: the version we wrote may be replaced, a stale one may not
        third = storage.replace_if_version("locks", "aa01", b"third", first)
        assert third is not None and storage.load("locks", "aa01") == b"third"
        assert storage.replace_if_version("locks", "aa01", b"late", first) is None
        storage.remove("locks", "aa01")
        assert storage.replace_if_version("locks", "aa01", b"back", third) is None
        assert not storage.exists("locks", "aa01")
    else:  # the server ignored If-None-Match and overwrote: what the probe predicted
        assert storage.load("locks", "aa01") == b"second"


def test_an_exclusive_lock_keeps_out_a_client_on_another_host(server: LockServer,
                                                             prefix: str) -> None:
    here, there = client(server, prefix), client(server, prefix)
    with RepositoryLock.acquire(here, exclusive=True, operation="prune") as held:
        with pytest.raises(RepositoryLocked) as refused:
            RepositoryLock.acquire(there, exclusive=False, operation="backup")
        assert held.info.host in str(refused.value)
        assert [info.lock_id for info in list_locks(there)] == [held.info.lock_id]
    with RepositoryLock.acquire(there, exclusive=True, operation="forget") as later:
        assert [info.lock_id for info in list_locks(here)] == [later.info.lock_id]
    assert all_keys(here) == []


def test_shared_locks_of_two_clients_coexist(server: LockServer, prefix: str) -> None:
    one, two = client(server, prefix), client(server, prefix)
    with RepositoryLock.acquire(one, exclusive=False, operation="backup") as a, \
            RepositoryLock.acquire(two, exclusive=False, operation="backup") as b:
        assert {i.lock_id for i in list_locks(one)} == {a.info.lock_id, b.info.lock_id}
    assert list_locks(one) == []


def test_a_dead_hosts_lock_expires_by_its_lease(server: LockServer, prefix: str) -> None:
    storage = client(server, prefix)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    dead = LockInfo(lock_id=secrets.token_hex(32), exclusive=True, host="gone.example",
                    pid=4242, user="backup", created=long_ago, heartbeat=long_ago,
                    lease_seconds=300.0, operation="backup", pid_namespace=None)
    storage.save("locks", dead.lock_id, dead.to_json())
    alive = replace(dead, lock_id=secrets.token_hex(32), heartbeat=datetime.now(UTC))
    with RepositoryLock.acquire(storage, exclusive=False, operation="backup") as held:
        assert [info.lock_id for info in held.stale_removed] == [dead.lock_id]
        assert not storage.exists("locks", dead.lock_id)
    storage.save("locks", alive.lock_id, alive.to_json())
    with pytest.raises(RepositoryLocked):
        RepositoryLock.acquire(storage, exclusive=False, operation="backup")
    assert [info.lock_id for info in list_locks(storage)] == [alive.lock_id]


def test_a_lock_removed_as_stale_is_lost_and_never_written_back(server: LockServer,
                                                               prefix: str) -> None:
    holder, other = client(server, prefix), client(server, prefix)
    lock = RepositoryLock.acquire(holder, exclusive=True, operation="prune",
                                  lease_seconds=30, heartbeat_seconds=0.1)
    try:
        assert (lock._version is not None) is server.enforces_conditional_put
        other.remove("locks", lock.info.lock_id)  # as a client that judged it stale would
        deadline = time.monotonic() + 10
        while not lock.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.lost
        with pytest.raises(LockLost):
            lock.check()
        time.sleep(0.3)  # a few more heartbeat periods: nothing may bring it back
        assert not other.exists("locks", lock.info.lock_id)
    finally:
        lock.release()
