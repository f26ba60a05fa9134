"""How the Azure backend reports what goes wrong, on Azurite: a wrong account key and a
missing container are permanent one-line errors that name no secret (the key is checked:
Azurite verifies Shared Key signatures); a service that does not answer is transient, so
RetryingStorage tries again."""

from __future__ import annotations

import base64
import secrets

import pytest

from cloud_servers import AzuriteServer, azurite_missing
from storage_servers import free_port
from vault.config.secrets import Secret
from vault.errors import StorageError, TransientStorageError
from vault.storage.azure import AzureSettings, AzureStorage


@pytest.fixture
def azure(request: pytest.FixtureRequest) -> AzuriteServer:
    missing = azurite_missing()
    if missing is not None:
        pytest.skip(missing)
    server: AzuriteServer = request.getfixturevalue("azurite_server")
    return server


def client(server: AzuriteServer, *, key: str | None = None, container: str | None = None,
           endpoint: str | None = None) -> AzureStorage:
    return AzureStorage(AzureSettings(
        container=container or server.container, prefix=f"errors-{secrets.token_hex(4)}",
        endpoint=endpoint or server.endpoint, account=server.account,
        account_key=Secret(key or server.key), sas_token=None, use_emulator=False))


def test_a_wrong_account_key_is_access_denied_and_not_retried(azure: AzuriteServer) -> None:
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(StorageError) as caught:
        client(azure, key=wrong).create()
    error = caught.value
    assert not error.transient
    message = str(error)
    assert "access denied" in message and "check the credentials" in message
    assert "\n" not in message
    assert wrong not in message and azure.key not in message


def test_a_missing_container_is_named(azure: AzuriteServer) -> None:
    storage = client(azure, container="no-such-container")
    with pytest.raises(StorageError) as caught:
        storage.save("keys", "ab", b"x")
    assert not caught.value.transient
    assert "container 'no-such-container' does not exist" in str(caught.value)


def test_a_service_that_does_not_answer_is_transient(azure: AzuriteServer) -> None:
    silent = client(azure, endpoint=f"http://127.0.0.1:{free_port()}/{azure.account}")
    with pytest.raises(TransientStorageError):
        silent.exists("keys", "ab")
