"""open_storage picks the backend by URL scheme; unknown schemes are a usage error."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.errors import UsageError
from vault.storage import Storage, known_schemes, open_storage, register
from vault.storage.local import LocalStorage
from vault.storage.registry import from_restic_bucket_form, scheme_of, unregister


def test_absolute_path_opens_local(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "repo"))
    assert isinstance(storage, LocalStorage)
    assert storage.location == str(tmp_path / "repo")


def test_relative_path_opens_local_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_storage("backups/repo")
    assert isinstance(storage, LocalStorage)
    assert storage.location == str(tmp_path / "backups" / "repo")


@pytest.mark.parametrize("prefix", ["file://", "file://localhost", "FILE://"])
def test_file_url_opens_local(tmp_path: Path, prefix: str) -> None:
    storage = open_storage(f"{prefix}{tmp_path}/my%20repo")
    assert isinstance(storage, LocalStorage)
    assert storage.location == str(tmp_path / "my repo")


def test_file_url_with_a_remote_host_is_refused() -> None:
    with pytest.raises(UsageError, match="remote host"):
        open_storage("file://nas.example/srv/repo")


def test_unknown_scheme_names_the_known_ones_but_not_the_url() -> None:
    with pytest.raises(UsageError) as caught:
        open_storage("xyz://user:hunter2@host/repo")
    message = str(caught.value)
    assert message.startswith("unknown storage scheme 'xyz' (known: az, file")
    assert "hunter2" not in message


def test_empty_location_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        open_storage("")


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("/srv/repo", "file"), ("repo", "file"), ("c:relative", "file"),
     ("file:///x", "file"), ("SFTP://h/p", "sftp"), ("s3+https://b/p", "s3+https"),
     ("s3:http://host:9000/bucket/repo", "s3"), ("sftp:u@h:/srv/repo", "sftp"),
     ("b2:bucket:path", "b2"), ("s3x:relative", "file"), ("gs:bucket:/p", "gs"),
     ("azure:container:/p", "az"), ("Azure:c:p", "az")],
)  # fmt: skip
def test_scheme_of(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


@pytest.fixture
def memo_scheme() -> Iterator[list[str]]:
    opened: list[str] = []

    def factory(url: str, settings: object) -> Storage:
        opened.append(url)
        return LocalStorage("/nonexistent/for-test")

    register("memo", factory)
    yield opened
    unregister("memo")


def test_a_registered_scheme_receives_the_full_url(memo_scheme: list[str]) -> None:
    assert "memo" in known_schemes()
    open_storage("memo://bucket/path?region=x")
    assert memo_scheme == ["memo://bucket/path?region=x"]


def test_registering_a_taken_scheme_is_refused(memo_scheme: list[str]) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register("memo", lambda url, settings: LocalStorage(url))


def test_restic_style_locations_open_their_backend_not_a_local_directory() -> None:
    from vault.storage.retry import RetryingStorage
    from vault.storage.s3 import S3Storage
    from vault.storage.sftp import SftpStorage

    retrying = open_storage("s3:http://127.0.0.1:9000/bucket/some/repo")
    assert isinstance(retrying, RetryingStorage)
    s3 = retrying.inner
    assert isinstance(s3, S3Storage)
    assert (s3.settings.bucket, s3.settings.prefix) == ("bucket", "some/repo")
    assert s3.settings.endpoint == "http://127.0.0.1:9000"
    sftp = open_storage("sftp:backup@nas.example:/srv/repo")
    try:
        assert isinstance(sftp, RetryingStorage) and isinstance(sftp.inner, SftpStorage)
        assert sftp.location == "sftp://backup@nas.example:22/srv/repo"
    finally:
        sftp.close()


@pytest.mark.parametrize("location", ["b2:bucket:repo", "rest:http://host:8000/",
                                      "swift:container:/repo"])
def test_restic_locations_of_backends_vault_lacks_are_refused(location: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_storage(location)
    assert str(caught.value).startswith("unknown storage scheme")
    assert "(known: az, file, gs, s3, sftp" in str(caught.value)


def test_a_relative_sftp_path_in_restic_form_is_refused() -> None:
    with pytest.raises(UsageError, match="absolute path"):
        open_storage("sftp:backup@nas.example:repo")


@pytest.mark.parametrize(
    ("location", "canonical"),
    [("gs:backups:/db1/main", "gs://backups/db1/main"), ("gs:backups:db1", "gs://backups/db1"),
     ("GS:backups:/", "gs://backups/"), ("azure:vault:/host-a/repo", "az://vault/host-a/repo"),
     ("azure:vault:repo", "az://vault/repo"), ("gs:b:/50%/x?y#z", "gs://b/50%25/x%3Fy%23z"),
     ("gs://backups/db1", "gs://backups/db1"), ("s3:http://h:9000/b/p", "s3:http://h:9000/b/p"),
     ("/srv/azure:x:/y", "/srv/azure:x:/y")],
)  # fmt: skip
def test_restic_gs_and_azure_forms_read_as_vault_urls(location: str, canonical: str) -> None:
    assert from_restic_bucket_form(location) == canonical


@pytest.mark.parametrize(("location", "expected"), [
    ("gs:backups", "restic-style gs: location needs a bucket and a path: gs:bucket:/prefix"),
    ("gs::/db1", "restic-style gs: location needs a bucket"),
    ("azure:/repo", "restic-style azure: location needs a container and a path: "
                    "azure:container:/prefix"),
])
def test_a_restic_gs_or_azure_form_without_its_bucket_is_refused(location: str,
                                                                 expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_storage(location)
    assert str(caught.value).startswith(expected)


def test_restic_gs_and_azure_locations_open_vaults_backends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same storage as the gs:// and az:// URL: bucket, prefix and the location shown
    in messages (opening makes no request)."""
    from vault.storage.azure import CONNECTION_STRING_ENV, AzureStorage
    from vault.storage.gcs import GcsStorage
    from vault.storage.retry import RetryingStorage

    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT_KEY", json.dumps(
        {"gcs_base_url": "http://127.0.0.1:9", "disable_oauth": True,
         "client_email": "x@example.invalid", "private_key_id": "k", "private_key": "k"}))
    monkeypatch.setenv(CONNECTION_STRING_ENV, "AccountName=vaulttest;AccountKey="
                       + base64.b64encode(b"k" * 32).decode()
                       + ";BlobEndpoint=http://127.0.0.1:9/vaulttest")
    gcs = open_storage("gs:backups:/db1/main")
    assert isinstance(gcs, RetryingStorage) and isinstance(gcs.inner, GcsStorage)
    assert (gcs.inner.settings.bucket, gcs.inner.settings.prefix) == ("backups", "db1/main")
    assert gcs.location == open_storage("gs://backups/db1/main").location
    azure = open_storage("azure:vault:/host-a/repo")
    assert isinstance(azure, RetryingStorage) and isinstance(azure.inner, AzureStorage)
    assert (azure.inner.settings.container, azure.inner.settings.prefix) == ("vault",
                                                                             "host-a/repo")
    assert azure.location.startswith("az://vault/host-a/repo")


def test_a_bad_bucket_in_a_restic_form_is_refused_by_the_backend() -> None:
    with pytest.raises(UsageError, match="not a valid GCS bucket name"):
        open_storage("gs:Not_A_Bucket!:/x")
