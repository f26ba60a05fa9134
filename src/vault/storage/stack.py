"""The decorators every repository's storage is opened with, in order from the backend
out: the bandwidth limit (limiter.py), then the metadata cache (cache.py), so a cache hit
costs no bandwidth at all. Retries sit in the backends that need them (sftp, and the obstore
backends: s3, gs, az)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vault.storage.base import Storage
from vault.storage.cache import MetadataCache, listing_memory
from vault.storage.limiter import LimitedStorage, kib_per_second
from vault.storage.registry import LOCAL_SCHEME, scheme_of


def decorated(storage: Storage, url: str, *, limit_upload_kib: int | None = None,
              limit_download_kib: int | None = None, cache: bool = True) -> Storage:
    """``storage`` (opened from ``url``) behind its limits and cache. A local repository
    gets no metadata cache: its objects are on local disk already."""
    if limit_upload_kib or limit_download_kib:
        storage = LimitedStorage(storage, kib_per_second(limit_upload_kib),
                                 kib_per_second(limit_download_kib))
    if cache and scheme_of(url) != LOCAL_SCHEME:
        storage = MetadataCache(storage)
    return storage


def read_through(storage: Storage) -> None:
    """Make the metadata cache under ``storage`` (if any) read everything from the
    repository, refreshing itself with what checks out: for `vault verify` and `vault
    repair`, which must judge the repository's objects, not local copies of them."""
    cache = listing_memory(storage)
    if cache is not None:
        cache.read_through = True


def bind_cache(storage: Storage, directory: Callable[[], Path]) -> bool:
    """Start the metadata cache under ``storage`` (if it has one) in ``directory()``
    (asked for only then: a repository without a cache makes no cache dir), once the
    repository's id is known; whether there was one."""
    cache = listing_memory(storage)
    if cache is None:
        return False
    if cache.directory is None:
        cache.bind(directory())
    return True
