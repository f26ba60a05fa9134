"""open_storage picks the backend by URL scheme; unknown schemes are a usage error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.errors import UsageError
from vault.storage import Storage, known_schemes, open_storage, register
from vault.storage.local import LocalStorage
from vault.storage.registry import scheme_of, unregister


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
     ("b2:bucket:path", "b2"), ("s3x:relative", "file")],
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
                                      "azure:container:/repo"])
def test_restic_locations_of_backends_vault_lacks_are_refused(location: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_storage(location)
    assert str(caught.value).startswith("unknown storage scheme")
    assert "(known: az, file, gs, s3, sftp" in str(caught.value)


def test_a_relative_sftp_path_in_restic_form_is_refused() -> None:
    with pytest.raises(UsageError, match="absolute path"):
        open_storage("sftp:backup@nas.example:repo")
