"""The base of storage decorators that change only some verbs (the bandwidth limit, the
metadata cache): every verb goes to ``inner`` unchanged unless a subclass overrides it.

Optional capabilities go through too: a decorator around a backend with conditional
writes still offers them (the lock protocol asks ``enforces_conditional_put``), and says
False when the backend under it has none, so callers fall back exactly as they would on
the bare backend. ``inner`` is the name ``temp_file_cleaner`` looks through.
"""

from __future__ import annotations

from collections.abc import Iterator

from vault.errors import StorageError
from vault.storage.base import ConditionalCreate, ObjectInfo, ObjectKind, Storage


class ForwardingStorage:
    """A Storage that hands every call to ``inner``."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.location = inner.location

    def create(self) -> None:
        self.inner.create()

    def exists(self, kind: ObjectKind, name: str) -> bool:
        return self.inner.exists(kind, name)

    def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
        self.inner.save(kind, name, data)

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        return self.inner.load(kind, name, offset, length)

    def stat(self, kind: ObjectKind, name: str) -> ObjectInfo:
        return self.inner.stat(kind, name)

    def list(self, kind: ObjectKind) -> Iterator[ObjectInfo]:
        return self.inner.list(kind)

    def remove(self, kind: ObjectKind, name: str) -> None:
        self.inner.remove(kind, name)

    def free_space(self) -> int | None:
        return self.inner.free_space()

    def volume_size(self) -> int | None:
        return self.inner.volume_size()

    def close(self) -> None:
        self.inner.close()

    # --- ConditionalCreate, when the storage underneath has it -------------------------

    def _conditional(self) -> ConditionalCreate:
        if not isinstance(self.inner, ConditionalCreate):
            raise StorageError(where=self.location,
                               detail="this storage has no conditional writes")
        return self.inner

    def save_new(self, kind: ObjectKind, name: str,
                 data: bytes | bytearray | memoryview) -> str | None:
        return self._conditional().save_new(kind, name, data)

    def replace_if_version(self, kind: ObjectKind, name: str,
                           data: bytes | bytearray | memoryview, version: str) -> str | None:
        return self._conditional().replace_if_version(kind, name, data, version)

    def enforces_conditional_put(self) -> bool:
        return isinstance(self.inner, ConditionalCreate) and \
            self.inner.enforces_conditional_put()
