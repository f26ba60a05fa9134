"""A repository in an S3 bucket (AWS, MinIO, Backblaze B2, rclone serve s3, ...) via obstore.

URL: ``s3://bucket/prefix``. Everything else — endpoint, region, path-style requests and
the credentials — comes from ``[repository.s3]`` in the config (credentials as secret
references) or, for what that leaves unset, the standard AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``). A URL is shown in messages, so it never carries a secret.

The layout, reads, writes, conditional writes and error mapping are those of every obstore
backend (``vault.storage.cloud``); this module only builds the S3 store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from vault.storage.base import Storage
from vault.storage.cloud import RETRY_CONFIG, ObjectStoreStorage, client_options, retrying
from vault.storage.registry import register
from vault.storage.s3_settings import S3Settings, from_restic_form, parse_s3_url, settings_from

if TYPE_CHECKING:
    from vault.config.model import RepositoryConfig


def _make_store(settings: S3Settings) -> Any:
    from obstore.store import S3Store  # heavy (a Rust extension): only when S3 is used

    config: dict[str, Any] = {"region": settings.region or "us-east-1"}
    if settings.endpoint:
        config["endpoint"] = settings.endpoint
    # A custom endpoint is almost always a self-hosted server that wants path-style.
    path_style = settings.path_style if settings.path_style is not None \
        else bool(settings.endpoint)
    config["virtual_hosted_style_request"] = not path_style
    for key in ("access_key_id", "secret_access_key", "session_token"):
        value = getattr(settings, key)
        if value is not None:
            config[key] = str(value)
    return S3Store(settings.bucket, prefix=settings.prefix or None, config=config,  # type: ignore[arg-type]
                   client_options=client_options(settings.endpoint),  # type: ignore[arg-type]
                   retry_config=RETRY_CONFIG)  # type: ignore[arg-type]


class S3Storage(ObjectStoreStorage):
    """Storage in an S3 bucket under a prefix; see the module docstring."""

    scheme: ClassVar[str] = "s3"
    settings: S3Settings
    make_store = staticmethod(_make_store)


def open_s3(url: str, settings: RepositoryConfig | None = None) -> Storage:
    """Factory for ``s3://bucket/prefix``, wrapped in ``RetryingStorage`` (cloud.retrying)."""
    return retrying(S3Storage(settings_from(url, settings.s3 if settings else None)))


register("s3", open_s3)

__all__ = ["S3Settings", "S3Storage", "from_restic_form", "open_s3", "parse_s3_url",
           "settings_from"]
