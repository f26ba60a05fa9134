"""A repository in a Google Cloud Storage bucket via obstore (the GCS XML API).

URL: ``gs://bucket/prefix``. The rest comes from ``[repository.gcs]``: ``endpoint`` (another
server than storage.googleapis.com), a service account's JSON key as a file
(``service_account_path``) or by secret reference (``service_account_key``). What that
leaves unset obstore takes from the Google environment (``GOOGLE_SERVICE_ACCOUNT``,
``GOOGLE_SERVICE_ACCOUNT_KEY``, ``GOOGLE_APPLICATION_CREDENTIALS``, the metadata server on
GCE). A URL is shown in messages, so it never carries a secret.

Conditional writes are GCS preconditions on the object's *generation*
(``x-goog-if-generation-match``: 0 to create, the generation to replace), so the version
tag this backend hands out is the generation, not the ETag.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from vault.config.secrets import Secret, resolve_secret
from vault.storage.cloud import (
    RETRY_CONFIG,
    ObjectStoreStorage,
    client_options,
    parse_bucket_url,
    retrying,
)
from vault.storage.registry import register

if TYPE_CHECKING:
    from vault.config.model import GcsConfig

# GCS bucket names: 3-63 characters (dotted names may be longer; rare, refused here).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
#: where obstore finds a service account's JSON key when the config names none
_KEY_ENV = "GOOGLE_SERVICE_ACCOUNT_KEY"


class GcsSettings(NamedTuple):
    """Where and how to reach the bucket, the key resolved (never shown: ``Secret``)."""

    bucket: str
    prefix: str
    endpoint: str | None
    service_account_path: Path | None
    service_account_key: Secret | None


def settings_from(url: str, config: GcsConfig | None) -> GcsSettings:
    bucket, prefix = parse_bucket_url(url, "gs", _BUCKET, "GCS bucket", "[repository.gcs]")
    key = None
    if config is not None and config.service_account_key is not None:
        key = resolve_secret(config.service_account_key, "GCS service account key")
    return GcsSettings(
        bucket=bucket, prefix=prefix, endpoint=config.endpoint if config else None,
        service_account_path=config.service_account_path if config else None,
        service_account_key=key)


def _base_url(settings: GcsSettings) -> str | None:
    """The endpoint requests go to: the table's, or the ``gcs_base_url`` a service account
    key may carry (obstore's way to point a key at an emulator), which decides whether
    plain HTTP is allowed. Without a key in the config, obstore reads one from
    ``GOOGLE_SERVICE_ACCOUNT_KEY``: so does this."""
    key = settings.service_account_key or os.environ.get(_KEY_ENV)
    if settings.endpoint or not key:
        return settings.endpoint
    try:
        named = json.loads(key).get("gcs_base_url")
    except (ValueError, AttributeError):
        return None  # obstore says what is wrong with the key, without echoing it
    return named if isinstance(named, str) else None


def _make_store(settings: GcsSettings) -> Any:
    from obstore.store import GCSStore  # heavy (a Rust extension): only when GCS is used

    config: dict[str, Any] = {}
    if settings.endpoint:
        config["base_url"] = settings.endpoint
    if settings.service_account_path is not None:
        config["service_account"] = str(settings.service_account_path)
    if settings.service_account_key is not None:
        config["service_account_key"] = str(settings.service_account_key)
    return GCSStore(settings.bucket, prefix=settings.prefix or None, config=config,  # type: ignore[arg-type]
                    client_options=client_options(_base_url(settings)),  # type: ignore[arg-type]
                    retry_config=RETRY_CONFIG)  # type: ignore[arg-type]


class GcsStorage(ObjectStoreStorage):
    """Storage in a GCS bucket under a prefix; see the module docstring."""

    version_field: ClassVar[str] = "version"

    make_store = staticmethod(_make_store)
    settings: GcsSettings
    scheme: ClassVar[str] = "gs"


register("gs", lambda url, repository: retrying(
    GcsStorage(settings_from(url, repository.gcs if repository else None))))
