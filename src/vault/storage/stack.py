"""The decorators every repository's storage is opened with, in order from the backend
out: the bandwidth limit (limiter.py), then the metadata cache (cache.py), so a cache hit
costs no bandwidth at all. Retries sit in the backends that need them (sftp)."""

from __future__ import annotations

from pathlib import Path

from vault.storage.base import Storage
from vault.storage.cache import MetadataCache
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


def bind_cache(storage: Storage, directory: Path) -> bool:
    """Start the metadata cache under ``storage`` (if it has one) in ``directory``, once
    the repository's id is known; whether there was one."""
    seen: object | None = storage
    while seen is not None:
        if isinstance(seen, MetadataCache):
            if seen.directory is None:
                seen.bind(directory)
            return True
        seen = getattr(seen, "inner", None)
    return False
