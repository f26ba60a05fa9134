"""How gs:// and az:// URLs, [repository.gcs], [repository.azure] and the Azure connection
string become backend settings: what is accepted, what is refused in one line, and that no
secret reaches a message or a location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from vault.config.model import AzureConfig, GcsConfig, RepositoryConfig
from vault.config.secrets import SecretRef
from vault.errors import StorageError, UsageError
from vault.storage import open_storage
from vault.storage.azure import AzureStorage, parse_connection_string
from vault.storage.azure import settings_from as azure_settings
from vault.storage.gcs import GcsStorage
from vault.storage.gcs import settings_from as gcs_settings
from vault.storage.retry import RetryingStorage

KEY = "c2VjcmV0LWtleS1vZi10aGUtdGVzdC1hY2NvdW50LTMy"  # a base64 "account key"
CONNECTION = (f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={KEY};"
              "BlobEndpoint=http://127.0.0.1:10000/acct;")


@pytest.mark.parametrize(("url", "bucket", "prefix"), [
    ("gs://backups", "backups", ""),
    ("gs://backups/db1", "backups", "db1"),
    ("gs://my_bucket.v2/a/b/", "my_bucket.v2", "a/b"),
])
def test_gs_urls(url: str, bucket: str, prefix: str) -> None:
    settings = gcs_settings(url, None)
    assert (settings.bucket, settings.prefix) == (bucket, prefix)


@pytest.mark.parametrize(("url", "container", "prefix"), [
    ("az://backups", "backups", ""),
    ("az://backups/db1/x", "backups", "db1/x"),
])
def test_az_urls(url: str, container: str, prefix: str) -> None:
    settings = azure_settings(url, None, env={})
    assert (settings.container, settings.prefix) == (container, prefix)


#: URL -> what the refusal says
BAD_URLS = {
    "gs://user:pw@backups/x": "must not contain credentials",
    "az://acct:key@backups/x": "must not contain credentials",
    "gs://backups/x?endpoint=http://h": "takes no query",
    "az://ab/x": "not a valid Azure container name",
    "az://my_container/x": "not a valid Azure container name",
    "gs://b/x": "not a valid GCS bucket name",
    "gs://backups/a//b": "empty, '.' or '..' part",
    "az://backups/../b": "empty, '.' or '..' part",
}


@pytest.mark.parametrize(("url", "says"), BAD_URLS.items())
def test_bad_urls_are_refused_in_one_line(url: str, says: str) -> None:
    with pytest.raises(UsageError) as refused:
        open_storage(url)
    message = str(refused.value)
    assert says in message and "\n" not in message
    assert "pw" not in message and "key" not in message.replace("keys", "")


def test_a_connection_string_gives_account_key_and_endpoint() -> None:
    settings = azure_settings("az://backups/db1", None, env={
        "AZURE_STORAGE_CONNECTION_STRING": CONNECTION})
    assert settings.account == "acct"
    assert settings.account_key == KEY and repr(settings.account_key) == "Secret('***')"
    assert settings.endpoint == "http://127.0.0.1:10000/acct"
    assert settings.sas_token is None and not settings.use_emulator


def test_the_table_wins_over_the_connection_string(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("b3RoZXIta2V5\n")
    key_file.chmod(0o600)
    table = AzureConfig(account="other", endpoint="https://other.blob.core.windows.net",
                        account_key=SecretRef(file=key_file),
                        connection_string=SecretRef(env="CONN"))
    settings = azure_settings("az://backups", table, env={"CONN": CONNECTION})
    assert (settings.account, settings.endpoint) == ("other",
                                                     "https://other.blob.core.windows.net")
    assert settings.account_key == "b3RoZXIta2V5"


def test_a_sas_and_a_sovereign_cloud_suffix() -> None:
    settings = azure_settings("az://backups", None, env={
        "AZURE_STORAGE_CONNECTION_STRING":
            "AccountName=acct;SharedAccessSignature=sv=2022&sig=abc%3D;"
            "EndpointSuffix=core.chinacloudapi.cn"})
    assert settings.sas_token == "sv=2022&sig=abc%3D"
    assert settings.endpoint == "https://acct.blob.core.chinacloudapi.cn"


def test_a_malformed_connection_string_is_refused_without_repeating_it() -> None:
    with pytest.raises(UsageError) as refused:
        azure_settings("az://backups", None, env={
            "AZURE_STORAGE_CONNECTION_STRING": f"AccountName=acct;{KEY}"})
    assert KEY not in str(refused.value)
    assert parse_connection_string(" A=1 ; B=x=y ;") == {"A": "1", "B": "x=y"}


@pytest.mark.parametrize("table", ["azure", "gcs"])
def test_plain_text_secrets_are_refused_in_the_config(table: str) -> None:
    key = "account_key" if table == "azure" else "service_account_key"
    with pytest.raises(ValidationError, match="plain-text secrets are not allowed"):
        RepositoryConfig.model_validate({"url": "az://x/y", table: {key: KEY}})


def test_the_location_names_no_secret_and_the_backend_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", CONNECTION)
    storage = open_storage("az://backups/db1")
    assert isinstance(storage, RetryingStorage) and isinstance(storage.inner, AzureStorage)
    assert storage.location == "az://backups/db1 at http://127.0.0.1:10000/acct"
    assert KEY not in repr(storage.inner.settings)


def test_a_gcs_key_by_reference_and_its_emulator_url(monkeypatch: pytest.MonkeyPatch) -> None:
    account = json.dumps({"gcs_base_url": "http://127.0.0.1:4443", "disable_oauth": True,
                          "client_email": "", "private_key": "PRIVATE-MARKER",
                          "private_key_id": "k1"})
    monkeypatch.setenv("GCS_KEY", account)
    repository = RepositoryConfig(url="gs://backups/db1",
                                  gcs=GcsConfig(service_account_key=SecretRef(env="GCS_KEY")))
    storage = open_storage(repository.url, repository)
    assert isinstance(storage, RetryingStorage) and isinstance(storage.inner, GcsStorage)
    assert storage.location == "gs://backups/db1"
    assert storage.inner.settings.service_account_key == account
    assert "PRIVATE-MARKER" not in repr(storage.inner.settings)


def test_a_key_obstore_refuses_is_one_line_without_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GCS_KEY", '{"private_key": "PRIVATE-MARKER"}')
    repository = RepositoryConfig(url="gs://backups/db1",
                                  gcs=GcsConfig(service_account_key=SecretRef(env="GCS_KEY")))
    with pytest.raises(StorageError) as refused:
        open_storage(repository.url, repository)
    message = str(refused.value)
    assert message.startswith("storage gs://backups/db1: cannot open: ") and "\n" not in message
    assert "PRIVATE-MARKER" not in message


def test_an_endpoint_with_a_query_is_refused_wherever_it_is_given() -> None:
    """A query in an endpoint (an Azure SAS pasted into the URL) would be shown wherever
    the repository is named: refused in the table and in a connection string."""
    from pydantic import ValidationError

    sas = "sv=2022&sig=c2VjcmV0LXNpZw%3D"
    with pytest.raises(ValidationError, match="takes no query") as caught:
        AzureConfig(account="acct", endpoint=f"https://acct.blob.core.windows.net/?{sas}")
    assert "c2VjcmV0" not in str(caught.value).split("input_value")[0]
    with pytest.raises(UsageError, match="BlobEndpoint holds a query") as refused:
        azure_settings("az://backups", None, env={
            "AZURE_STORAGE_CONNECTION_STRING":
                f"AccountName=acct;BlobEndpoint=https://acct.blob.core.windows.net/?{sas}"})
    assert "c2VjcmV0" not in str(refused.value)
