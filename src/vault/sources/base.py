"""What every source of data is to the rest of vault: a small Protocol and its data types.

A source (a directory of files, a SQLite file, a PostgreSQL or MongoDB database, an
application's settings) is captured as a list of *items*: named byte streams that the
repository engine stores as files of the snapshot tree, chunked and deduplicated like any
other file. A source chooses its items so that unchanged data makes unchanged bytes (a
MongoDB collection as canonical BSON in `_id` order, a SQLite file page by page), because
that is what deduplicates between snapshots. Restoring is the reverse: the source reads its
items back from a `StoredItems` and rebuilds the database.

The engine consumes a capture's items in order, one at a time: each item is opened, read
to its end and closed before the next is opened, so a source may produce them all from one
connection or one consistent read transaction held open by `capture()`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, BinaryIO, ClassVar, Literal, Protocol, runtime_checkable

from vault.planning.restore_plan import RestorePlan, default_on_conflict

__all__ = [
    "Capture",
    "CaptureContext",
    "CountingReader",
    "EntitySelectable",
    "IterStream",
    "MemoryStoredItems",
    "PlannedRestore",
    "RewrittenItems",
    "SecretSealer",
    "Source",
    "SourceEstimate",
    "SourceItem",
    "SourceRestoreRequest",
    "SourceRestoreResult",
    "StoredItems",
    "capture_to_memory",
    "stream_of",
]


@dataclass(frozen=True)
class SourceItem:
    """One named byte stream of a capture, stored as one file of the snapshot.

    `path` is relative and "/"-separated ("chat/messages.bson"); `open` returns a readable
    binary stream the engine reads to its end and closes. `size_hint` feeds progress only.
    `counts` (documents, rows, ...) end up in the snapshot's per-source metadata."""

    path: str
    open: Callable[[], AbstractContextManager[BinaryIO]]
    size_hint: int | None = None
    mode: int = 0o100600
    mtime_ns: int = 0


@dataclass
class Capture:
    """A consistent point in time of a source, valid while `capture()`'s context is open.

    `meta` is stored in the snapshot (`snapshot.source["meta"]`) after every item has been
    read, so a source may fill it in while its items are read (row counts, LSNs, date
    ranges). It must hold no secret: it is shown by `vault snapshots --json`.

    `taken_at` is when the consistent point was taken, for a source that knows it better
    than the engine (which otherwise records when it asked for the capture): the snapshot's
    `captured_at`, compared across the members of a group."""

    items: Iterable[SourceItem]
    meta: dict[str, Any] = field(default_factory=dict)
    taken_at: datetime | None = None


class SecretSealer(Protocol):
    """Encrypts small secret values (settings) under a key derived from the repository's
    master key, so they can be restored but never appear in plain text anywhere."""

    def seal(self, plaintext: bytes) -> bytes: ...

    def unseal(self, sealed: bytes) -> bytes: ...


@dataclass
class CaptureContext:
    """What the engine gives a capture. `warn(where, message)` records a non-fatal problem
    (the snapshot becomes `partial`); anything that makes the capture unusable is raised.
    `scratch_dir` is a private directory on a disk with room (the cache dir), for a source
    that must make a temporary consistent copy; the source removes what it puts there."""

    warn: Callable[[str, str], None] = lambda where, message: None
    scratch_dir: str | None = None
    sealer: SecretSealer | None = None


@dataclass(frozen=True)
class SourceEstimate:
    """What `vault backup --estimate` shows for a source before anything is read."""

    bytes: int | None
    items: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # e.g. {"tables": {"t": rows}}


@dataclass(frozen=True)
class SourceRestoreRequest:
    """Where and what to restore. `target` is source-specific: a file path (SQLite), a
    database name or URL (PostgreSQL, MongoDB); None means the source's own location.
    `only` selects tables / collections ("db.coll" for MongoDB); empty means all."""

    target: str | None = None
    only: tuple[str, ...] = ()
    query: dict[str, Any] | None = None
    # "new" and "replace" are the first names of "new-target" and "overwrite" (see
    # vault.planning.restore_plan for what each mode and conflict policy does, per record).
    mode: Literal["replace", "new", "overwrite", "merge", "new-target"] = "new"
    sealer: SecretSealer | None = None
    scratch_dir: str | None = None
    on_conflict: Literal["skip", "overwrite", "rename", "fail"] | None = None
    # Restore an entity as a new copy: new ids, references rewritten (mapping reported).
    remap_ids: bool = False
    # With remap_ids: fields of the copy's top entity rows set to new values, so the copy
    # can be told apart (a new project name): (field, value) pairs.
    rename: tuple[tuple[str, str], ...] = ()
    dry_run: bool = False  # plan only: `restore` returns the plan (`result.plan`)

    @property
    def plan_mode(self) -> Literal["overwrite", "merge", "new-target"]:
        return {"replace": "overwrite", "new": "new-target"}.get(  # type: ignore[return-value]
            self.mode, self.mode)


@dataclass
class SourceRestoreResult:
    """What a restore wrote (a dry run: nothing) and the plan it carried out, when the
    source plans record by record (a whole-file or whole-database swap has none).
    `details` is what the CLI shows and prints as JSON; it holds the plan's JSON too."""

    items: int = 0
    bytes: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    plan: RestorePlan | None = None


class StoredItems(Protocol):
    """A snapshot's items, read back: what a source restores from."""

    meta: dict[str, Any]

    def paths(self) -> list[str]: ...

    def size(self, path: str) -> int: ...

    def open(self, path: str) -> AbstractContextManager[BinaryIO]: ...


@runtime_checkable
class Source(Protocol):
    """A configured or ad-hoc source. `describe()` is stored in the snapshot and journaled,
    so it names the source (type, name, host, database, file) and never holds a secret."""

    type: ClassVar[str]
    name: str

    def describe(self) -> dict[str, Any]: ...

    def estimate(self) -> SourceEstimate: ...

    def capture(self, context: CaptureContext) -> AbstractContextManager[Capture]: ...

    def restore(self, stored: StoredItems,
                request: SourceRestoreRequest) -> SourceRestoreResult: ...

    def plan_restore(self, stored: StoredItems,
                     request: SourceRestoreRequest) -> RestorePlan: ...

    def apply(self, stored: StoredItems, request: SourceRestoreRequest) -> SourceRestoreResult: ...

    def for_target(self, request: SourceRestoreRequest,
                   stored: StoredItems | None = None) -> Source | None: ...


class PlannedRestore:
    """`plan_restore` and `apply` of a source whose `restore` plans (a dry run) or plans
    and writes in one transaction: what the restore pipeline calls."""

    def restore(self, stored: StoredItems,
                request: SourceRestoreRequest) -> SourceRestoreResult:
        raise NotImplementedError

    def plan_restore(self, stored: StoredItems,
                     request: SourceRestoreRequest) -> RestorePlan:
        """What restoring `request` would do to the target as it is now, record by
        record (empty for a source that swaps whole files and has no per-record plan)."""
        planned = self.restore(stored, replace(request, dry_run=True)).plan
        if planned is not None:
            return planned
        mode = request.plan_mode
        return RestorePlan(mode, request.on_conflict or default_on_conflict(mode))

    def apply(self, stored: StoredItems, request: SourceRestoreRequest) -> SourceRestoreResult:
        """Carry the restore out: the source plans again inside its write transaction, so
        what it writes is what the target holds at that moment."""
        return self.restore(stored, replace(request, dry_run=False))

    def for_target(self, request: SourceRestoreRequest,
                   stored: StoredItems | None = None) -> Source | None:
        """A source capturing what restoring `request` (from `stored`) would change, for
        the safety copy that undoes it; None: this source cannot say (no undo)."""
        return None


@runtime_checkable
class EntitySelectable(Protocol):
    """A source with an entity hierarchy can back up one entity and everything below it
    (`vault backup --entity project=ID`)."""

    def select_entity(self, entity: str, ids: tuple[Any, ...]) -> Source: ...


# --- helpers for sources ---------------------------------------------------------------


class IterStream(io.RawIOBase):
    """A readable binary stream over an iterator of byte strings (a cursor's documents, a
    generator of pages) so an item can be produced lazily, without a temporary file."""

    def __init__(self, parts: Iterable[bytes]) -> None:
        super().__init__()
        self._parts: Iterator[bytes] = iter(parts)
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        filled = 0
        while filled < len(view):
            if not self._buffer:
                part = next(self._parts, None)
                if part is None:
                    break
                self._buffer = memoryview(part).cast("B")
                continue
            n = min(len(view) - filled, len(self._buffer))
            view[filled:filled + n] = self._buffer[:n]
            self._buffer = self._buffer[n:]
            filled += n
        return filled

    def close(self) -> None:
        close = getattr(self._parts, "close", None)
        if close is not None:
            close()  # a generator's finally blocks run now (cursors, transactions)
        super().close()


Opener = Callable[[], AbstractContextManager[BinaryIO]]


def stream_of(parts: Callable[[], Iterable[bytes]]) -> Opener:
    """An item's `open` that streams the byte strings `parts()` yields when opened."""

    @contextmanager
    def open_stream() -> Iterator[BinaryIO]:
        stream = io.BufferedReader(IterStream(parts()), buffer_size=1 << 20)
        try:
            yield stream
        finally:
            stream.close()

    return open_stream


class MemoryStoredItems:
    """StoredItems over bytes in memory: what `capture_to_memory` returns. Tests of a
    source's capture/restore use it; the engine's own reader reads a snapshot."""

    def __init__(self, data: dict[str, bytes], meta: dict[str, Any]) -> None:
        self.data = data
        self.meta = meta

    def paths(self) -> list[str]:
        return sorted(self.data)

    def size(self, path: str) -> int:
        return len(self.data[path])

    @contextmanager
    def open(self, path: str) -> Iterator[BinaryIO]:
        yield io.BytesIO(self.data[path])


class RewrittenItems:
    """StoredItems over another's with some items' bytes rewritten as they are read (a
    source's protected secrets revealed for a restore). `rewriter(path)` gives what
    produces an item's new bytes, or None to pass it through; sizes are the stored ones."""

    def __init__(self, stored: StoredItems) -> None:
        self.meta = stored.meta
        self._stored = stored

    def rewriter(self, path: str) -> Callable[[], Iterable[bytes]] | None:
        return None

    def paths(self) -> list[str]:
        return self._stored.paths()

    def size(self, path: str) -> int:
        return self._stored.size(path)

    def open(self, path: str) -> AbstractContextManager[BinaryIO]:
        parts = self.rewriter(path)
        if parts is None:
            return self._stored.open(path)
        return stream_of(parts)()


class CountingReader:
    """Reads stored items in parts and counts what it read (items, bytes), for a
    restore's result."""

    def __init__(self, stored: StoredItems, part_size: int = 1 << 20) -> None:
        self.stored = stored
        self.part_size = part_size
        self.paths: set[str] = set()
        self.bytes = 0

    def read(self, path: str) -> Iterator[bytes]:
        self.paths.add(path)
        with self.stored.open(path) as stream:
            while part := stream.read(self.part_size):
                self.bytes += len(part)
                yield part


def capture_to_memory(source: Source, context: CaptureContext | None = None) -> MemoryStoredItems:
    """Capture `source` the way the engine does (items in order, each read to its end)."""
    data: dict[str, bytes] = {}
    with source.capture(context or CaptureContext()) as capture:
        for item in capture.items:
            if item.path in data:
                raise ValueError(f"source {source.name}: item {item.path!r} given twice")
            with item.open() as stream:
                data[item.path] = stream.read()
        meta = dict(capture.meta)
    return MemoryStoredItems(data, meta)
