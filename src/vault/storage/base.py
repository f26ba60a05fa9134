"""The storage interface every backend implements, and the rules all of them share.

Like restic's ``backend.Backend``, the interface is deliberately small: named immutable-ish
objects grouped by kind, saved atomically, loaded whole or by range, listed, removed.
Everything above it (packs, index, snapshots, locks) is built from these verbs, and
decorators (``retry.RetryingStorage``) wrap any backend without the callers noticing.

Object names are lowercase hex ids (the config object, alone in its kind, is named
"config"). Backends call ``validate_name`` first, so a name can never smuggle a path
separator, "..", or a hidden temp-file prefix into the layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, get_args, runtime_checkable

from vault.errors import StorageError

ObjectKind = Literal[
    "config", "keys", "data", "index", "snapshots", "condemned", "damaged", "anchors", "locks"
]

#: every kind, in layout order (config first, locks last)
KINDS: Final[tuple[ObjectKind, ...]] = get_args(ObjectKind)

CONFIG_NAME: Final = "config"

# Two characters minimum because data objects are fanned out by their first two; 128 is
# generous for any hash or random id we will ever use and keeps paths short.
_HEX_NAME = re.compile(r"[0-9a-f]{2,128}")


class InvalidObjectName(StorageError):
    """storage {where}: refused object name {name!r} for kind {kind!r}: {reason}"""


@dataclass(frozen=True)
class ObjectInfo:
    """What ``stat`` and ``list`` report about one stored object."""

    kind: ObjectKind
    name: str
    size: int


@runtime_checkable
class Storage(Protocol):
    """A repository's objects, wherever they live.

    Contract (checked for every backend by tests/contract/test_storage_contract.py):
    - ``save`` is atomic: a reader sees the old object, the new one, or none, never a part.
      Saving an existing name replaces it (atomically); callers that must not overwrite
      check ``exists`` first — content-addressed names make that race harmless.
    - missing objects raise ``ObjectNotFound``; a full target raises ``NotEnoughSpace``;
      every other failure is a ``StorageError`` whose ``transient`` flag tells
      ``RetryingStorage`` whether trying again can help.
    - implementations are safe to call from several threads at once (a lock's heartbeat
      runs in its own thread next to the operation that holds it).
    """

    #: human-readable location for messages and logs; never contains credentials
    location: str

    def create(self) -> None:
        """Make the layout; ``RepositoryExists`` if a config object is already there."""
        ...

    def exists(self, kind: ObjectKind, name: str) -> bool: ...

    def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` under ``name``, atomically, replacing any existing object."""
        ...

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        """The object's bytes from ``offset``; exactly ``length`` of them if given."""
        ...

    def stat(self, kind: ObjectKind, name: str) -> ObjectInfo: ...

    def list(self, kind: ObjectKind) -> Iterator[ObjectInfo]:
        """Every complete object of ``kind``, in no particular order (never temp files)."""
        ...

    def remove(self, kind: ObjectKind, name: str) -> None:
        """Delete the object; ``ObjectNotFound`` if it is not there."""
        ...

    def free_space(self) -> int | None:
        """Bytes we may still write, or None when the backend cannot tell."""
        ...

    def volume_size(self) -> int | None:
        """Size of the volume holding the repository, or None when the backend cannot
        tell (what the free-space reserve scales with)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LeavesTempFiles(Protocol):
    """An optional capability: a backend whose saves write a temp file first (local
    directories, SFTP) and so can leave one behind when the process is killed. Backup and
    prune call it (``isinstance(storage, LeavesTempFiles)``); a backend whose uploads are
    atomic by themselves (S3) has no such debris and does not implement it."""

    def cleanup_temp_files(self, max_age_seconds: float) -> Sequence[object]:
        """Remove temp files older than ``max_age_seconds``; return what was removed."""
        ...


def temp_file_cleaner(storage: object) -> LeavesTempFiles | None:
    """The backend under ``storage``'s decorators that leaves temp files, if any.

    Decorators (``RetryingStorage`` and the like) keep the storage they wrap in ``inner``
    and need not repeat every optional capability; this looks through them."""
    seen: object | None = storage
    while seen is not None:
        if isinstance(seen, LeavesTempFiles):
            return seen
        seen = getattr(seen, "inner", None)
    return None


@runtime_checkable
class ConditionalCreate(Protocol):
    """A backend with conditional writes: store an object only if its name is free
    (``If-None-Match: *`` on S3), replace it only if it is still the version we wrote
    (``If-Match: <etag>``). Servers may silently ignore conditions, so callers ask
    ``enforces_conditional_put()`` (a probe, remembered) before relying on them."""

    def save_new(self, kind: ObjectKind, name: str,
                 data: bytes | bytearray | memoryview) -> str | None:
        """Store ``data`` unless an object has that name: the new object's version tag,
        or None (nothing written) if one has."""
        ...

    def replace_if_version(self, kind: ObjectKind, name: str,
                           data: bytes | bytearray | memoryview, version: str) -> str | None:
        """Replace the object only if it is still ``version``: the new version tag, or None
        (nothing written) if it was removed or replaced meanwhile."""
        ...

    def enforces_conditional_put(self) -> bool: ...


def validate_kind(kind: str, where: str) -> ObjectKind:
    """Return ``kind`` typed as an ObjectKind, or refuse it."""
    for known in KINDS:
        if kind == known:
            return known
    raise InvalidObjectName(where=where, name="", kind=kind, reason=f"kinds are {KINDS}")


def object_dir(kind: ObjectKind, name: str) -> tuple[str, ...]:
    """The folders (relative to the repository root) that hold object `name` of `kind`,
    the one layout every backend uses: `config` at the root, data fanned out by the first
    two characters of the name (`data/ab/`), every other kind in a folder of its name."""
    if kind == "config":
        return ()
    if kind == "data":
        return ("data", name[:2])
    return (kind,)


def validate_name(kind: ObjectKind, name: str, where: str) -> None:
    """Refuse any name that is not a lowercase hex id (or "config" for the config kind).

    This is the one gate between caller-supplied names and backend paths/keys, so it is
    strict on purpose: no separators, no dots, no upper case (which would alias on
    case-insensitive filesystems), no empty names.
    """
    validate_kind(kind, where)
    if kind == "config":
        if name != CONFIG_NAME:
            raise InvalidObjectName(
                where=where, name=name, kind=kind, reason='the config object is named "config"'
            )
        return
    if not isinstance(name, str) or _HEX_NAME.fullmatch(name) is None:
        raise InvalidObjectName(
            where=where, name=name, kind=kind, reason="expected 2-128 lowercase hex digits"
        )


def validate_range(offset: int, length: int | None, where: str, name: str) -> None:
    """Refuse negative offsets and lengths before any I/O happens."""
    if offset < 0 or (length is not None and length < 0):
        raise StorageError(
            where=where, detail=f"invalid range offset={offset} length={length} for {name}"
        )
