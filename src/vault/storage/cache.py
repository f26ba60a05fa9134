"""The local metadata cache, as restic's: what a backup, `ls` or `snapshots` of a remote
repository reads again and again, kept on local disk so it crosses the network once.

Cached: index files and snapshots (whole objects), and the ranges of packs that hold tree
blobs (``keep_range`` / ``cached_range``, used by the repository for tree blobs only, and
only for copies that authenticated — file data is never cached). Measured on S3 before
the cache (docs/storage.md#the-metadata-cache): a no-change backup re-read every index file
and the parent snapshot; `ls` every index file, the snapshots and the trees it walks; those
are exactly what is kept.

It can never be stale: every one of those objects is named by the SHA-256 of its bytes and
never changes under its name. Each read from disk is checked — a whole object against its
name, a pack range against the digest stored after it — and an entry that fails (a flipped
byte, a torn write) is dropped and fetched again. Objects removed from the repository (by
a prune, here or on another host) leave the cache when a complete listing of their kind no
longer shows them, or at once when this process removes them.

The cache is only ever a shortcut: any error reading or writing it falls back to the
storage, never fails the operation. Files are private (0700 directories, 0600 files) under
``<cache dir>/<repository id>/``, beside the files cache; bound once the repository id is
known (``bind``), until then every call goes straight through.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Final

from vault.foundation.paths import ensure_private_dir
from vault.storage.base import ObjectInfo, ObjectKind, Storage
from vault.storage.forwarding import ForwardingStorage

#: kinds cached as whole objects, each named by the SHA-256 of its bytes
WHOLE_KINDS: Final[tuple[ObjectKind, ...]] = ("index", "snapshots")
_DIGEST = 32
_TEMP_PREFIX = "."


class MetadataCache(ForwardingStorage):
    """A Storage that keeps index files, snapshots and tree ranges of packs on local disk."""

    def __init__(self, inner: Storage, directory: Path | None = None) -> None:
        super().__init__(inner)
        self.directory: Path | None = None
        #: bytes served from the cache and fetched because of a miss, for reports and tests
        self.hit_bytes = 0
        self.miss_bytes = 0
        self._lock = threading.Lock()
        #: read everything from the repository (and refresh the cache with it): what
        #: `vault verify` and `vault repair` set, as they must judge the repository itself
        self.read_through = False
        #: {kind: {name: size}} from this process's last complete listing of each kind,
        #: kept current by its own saves and removals (`listed`)
        self._listed: dict[ObjectKind, dict[str, int]] = {}
        if directory is not None:
            self.bind(directory)

    def bind(self, directory: Path) -> None:
        """Start caching in ``directory`` (the repository's own, made private; OSError or
        SharedWritable when it cannot be: the caller goes on without a cache)."""
        self.directory = ensure_private_dir(directory)

    # --- whole objects ---------------------------------------------------------------

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        path = self._whole_path(kind, name)
        if path is None or offset or length is not None:
            return self.inner.load(kind, name, offset, length)
        cached = None if self.read_through else _read(path)
        if cached is not None and _sha256(cached) == name:
            self._count(hit=len(cached))
            return cached
        if cached is not None:
            _unlink(path)  # damaged on disk: fetched again below
        data = self.inner.load(kind, name)
        self._count(miss=len(data))
        if _sha256(data) == name:  # a damaged download is for the caller to report
            _store(path, data)
        return data

    def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
        self.inner.save(kind, name, data)
        with self._lock:
            if kind in self._listed:
                self._listed[kind][name] = len(data)
        path = self._whole_path(kind, name)
        if path is not None and _sha256(data) == name:
            _store(path, bytes(data))

    def remove(self, kind: ObjectKind, name: str) -> None:
        try:
            self.inner.remove(kind, name)
        finally:
            with self._lock:
                self._listed.get(kind, {}).pop(name, None)
            self._drop(kind, {name})

    def list(self, kind: ObjectKind) -> Iterator[ObjectInfo]:
        """The storage's listing; once it is complete, cache entries of ``kind`` it did
        not show are dropped (removed elsewhere, by a prune on another host)."""
        seen: dict[str, int] = {}
        for info in self.inner.list(kind):
            seen[info.name] = info.size
            yield info
        with self._lock:
            self._listed[kind] = seen
        if self.directory is not None and (kind in WHOLE_KINDS or kind == "data"):
            self._drop(kind, set(_entries(self.directory / kind)) - set(seen))

    def listed(self, kind: ObjectKind) -> dict[str, int] | None:
        """{name: size} of ``kind`` as this process last listed it completely, with its own
        saves and removals since applied; None if it has not listed ``kind``. What the
        stored-size figures after a backup are made of, without listing again."""
        with self._lock:
            found = self._listed.get(kind)
            return dict(found) if found is not None else None

    # --- ranges of packs holding tree blobs ------------------------------------------

    def cached_range(self, kind: ObjectKind, name: str, offset: int,
                     length: int) -> bytes | None:
        """The bytes ``load(kind, name, offset, length)`` returned when they were kept, if
        the cache has them intact; None otherwise (a damaged entry is dropped). The caller
        authenticates them as it would a download (a tree blob's AES-GCM tag)."""
        path = self._range_path(kind, name, offset, length)
        cached = _read(path) if path is not None and not self.read_through else None
        if cached is None or path is None:
            return None
        if len(cached) == length + _DIGEST and \
                _sha256_bytes(cached[:length]) == cached[length:]:
            self._count(hit=length)
            return cached[:length]
        _unlink(path)
        return None

    def keep_range(self, kind: ObjectKind, name: str, offset: int, length: int,
                   data: bytes) -> None:
        """Keep a range the caller loaded and authenticated (metadata later commands will
        read again: a tree blob's bytes in its pack), with a digest to check it by."""
        path = self._range_path(kind, name, offset, length)
        if path is not None and len(data) == length:
            self._count(miss=length)
            _store(path, data + _sha256_bytes(data))

    def forget_range(self, kind: ObjectKind, name: str, offset: int, length: int) -> None:
        """Drop a kept range whose content did not authenticate."""
        path = self._range_path(kind, name, offset, length)
        if path is not None:
            _unlink(path)

    def _range_path(self, kind: ObjectKind, name: str, offset: int,
                    length: int) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / kind / name / f"{offset}-{length}"

    # --- bookkeeping -----------------------------------------------------------------

    def _whole_path(self, kind: ObjectKind, name: str) -> Path | None:
        if self.directory is None or kind not in WHOLE_KINDS:
            return None
        return self.directory / kind / name

    def _drop(self, kind: ObjectKind, names: set[str]) -> None:
        if self.directory is None or not names:
            return
        for name in names:
            path = self.directory / kind / name
            if path.is_dir():
                for part in _entries(path, temp_too=True):
                    _unlink(path / part)
                _rmdir(path)
            else:
                _unlink(path)

    def _count(self, hit: int = 0, miss: int = 0) -> None:
        with self._lock:
            self.hit_bytes += hit
            self.miss_bytes += miss


def listing_memory(storage: object) -> MetadataCache | None:
    """The metadata cache among ``storage``'s decorators, bound or not (its `listed`)."""
    seen: object | None = storage
    while seen is not None:
        if isinstance(seen, MetadataCache):
            return seen
        seen = getattr(seen, "inner", None)
    return None


def metadata_cache(storage: object) -> MetadataCache | None:
    """The metadata cache among ``storage``'s decorators, bound to a directory, if any."""
    seen: object | None = storage
    while seen is not None:
        if isinstance(seen, MetadataCache):
            return seen if seen.directory is not None else None
        seen = getattr(seen, "inner", None)
    return None


def _sha256(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_bytes(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _entries(directory: Path, *, temp_too: bool = False) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [n for n in names if temp_too or not n.startswith(_TEMP_PREFIX)]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _store(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` atomically (private); a failure leaves no entry."""
    temp = path.with_name(f"{_TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except OSError:
        _unlink(temp)


def _unlink(path: Path) -> None:
    with suppress(OSError):
        path.unlink()


def _rmdir(path: Path) -> None:
    with suppress(OSError):
        path.rmdir()
