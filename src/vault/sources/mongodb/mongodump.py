"""`mongodump --archive` files (optionally gzipped) read as MongoDB source items.

The archive format (mongo-tools, archive version 0.1): the magic number 0x8199e26d
(little-endian), a header document, one metadata document per collection, 0xffffffff,
then interleaved namespace segments: a namespace header document {db, collection, EOF,
CRC}, documents, 0xffffffff. A namespace ends with an EOF header whose CRC is the
CRC-64-ECMA (Go's `hash/crc64`) of all its documents. Everything is checked: lengths,
that every document is BSON with an `_id`, that every namespace is closed and its CRC
matches, that no `_id` repeats.

The items are what the MongoDB source's capture writes (`<db>/<coll>.metadata.json` in
its shape, `<db>/<coll>.bson` in `_id` order), so `MongoSource.restore` restores an
imported snapshot like a captured one. Documents are kept as the archive's bytes; only
their order changes. mongodump writes them in natural order, so they are spooled to a
scratch file per collection and read back sorted.
"""

from __future__ import annotations

import gzip
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import IO, Any, BinaryIO

from bson import SON, Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from bson.errors import BSONError

from vault.errors import ExportCorrupted
from vault.sources.base import SourceItem, stream_of
from vault.sources.mongodb.bson_items import decode_document, dump_json, load_json
from vault.sources.mongodb.selection import BSON_SUFFIX, METADATA_SUFFIX, item_path

MAGIC = struct.pack("<I", 0x8199E26D)  # b"\x6d\xe2\x99\x81"
GZIP_MAGIC = b"\x1f\x8b"
_TERMINATOR = b"\xff\xff\xff\xff"
_LENGTH = struct.Struct("<i")
_MAX_DOCUMENT = 48 << 20  # a BSON document is at most 16 MiB; more is a damaged length
_PIECE = 256 * 1024  # as the capture: documents joined into pieces of this size
_READ_ERRORS = (OSError, EOFError, zlib.error)


def is_mongodump(path: Path) -> bool:
    """Whether `path` starts with the archive magic, plain or inside gzip."""
    try:
        with open(path, "rb") as raw:
            head = raw.read(4)
            if head == MAGIC:
                return True
            if head[:2] != GZIP_MAGIC:
                return False
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as unzipped:
                return unzipped.read(4) == MAGIC
    except _READ_ERRORS:
        return False


# --- CRC-64-ECMA as Go computes it (reflected, all ones in and out: CRC-64/XZ) ---------

_POLY = 0xC96C5795D7870F42


def _tables() -> list[list[int]]:
    first = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        first.append(crc)
    tables = [first]
    for _ in range(7):
        last = tables[-1]
        tables.append([(last[n] >> 8) ^ first[last[n] & 0xFF] for n in range(256)])
    return tables


_T = _tables()


def crc64_update(crc: int, data: bytes) -> int:
    """Continue a CRC-64-ECMA (start with 0); slicing-by-8, pure Python."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _T
    crc ^= 0xFFFFFFFFFFFFFFFF
    whole = len(data) & ~7
    for (word,) in struct.iter_unpack("<Q", memoryview(data)[:whole]):
        crc ^= word
        crc = (t7[crc & 0xFF] ^ t6[(crc >> 8) & 0xFF] ^ t5[(crc >> 16) & 0xFF]
               ^ t4[(crc >> 24) & 0xFF] ^ t3[(crc >> 32) & 0xFF] ^ t2[(crc >> 40) & 0xFF]
               ^ t1[(crc >> 48) & 0xFF] ^ t0[crc >> 56])
    for byte in data[whole:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


# --- the order of `_id`s: MongoDB's comparison order of BSON types ---------------------


def id_sort_key(value: Any) -> tuple[Any, ...]:
    """A key that orders `_id` values as the server's `sort({_id: 1})` does for the types
    an `_id` takes: MinKey, null, numbers (by value), strings (by UTF-8 bytes), documents,
    binaries (length, subtype, bytes), ObjectIds, booleans, dates, timestamps, regexes,
    MaxKey."""
    if isinstance(value, MinKey):
        return (1,)
    if value is None:
        return (2,)
    if isinstance(value, bool):
        return (9, value)
    if isinstance(value, int | float | Int64 | Decimal128):
        number = value.to_decimal() if isinstance(value, Decimal128) else Decimal(value)
        return (3, 0, Decimal(0)) if number.is_nan() else (3, 1, number)
    if isinstance(value, str):
        return (4, value.encode("utf-8", "surrogatepass"))
    if isinstance(value, Code):
        return (13, str(value))
    if isinstance(value, dict | SON):
        return (5, tuple((str(k).encode(), id_sort_key(v)) for k, v in value.items()))
    if isinstance(value, list):
        return (6, tuple(id_sort_key(v) for v in value))
    if isinstance(value, bytes | Binary):
        subtype = value.subtype if isinstance(value, Binary) else 0
        return (7, len(value), subtype, bytes(value))
    if isinstance(value, ObjectId):
        return (8, value.binary)
    if isinstance(value, DatetimeMS):
        return (10, int(value))
    if hasattr(value, "tzinfo") and hasattr(value, "timestamp"):  # a datetime
        return (10, int(DatetimeMS(value)))
    if isinstance(value, Timestamp):
        return (11, value.time, value.inc)
    if isinstance(value, Regex):
        return (12, str(value.pattern), value.flags)
    if isinstance(value, MaxKey):
        return (14,)
    return (15, repr(value))


# --- reading the archive ----------------------------------------------------------------


@dataclass
class Namespace:
    """One collection or view of the archive, and what its segments held."""

    database: str
    collection: str
    metadata: dict[str, Any]
    documents: int = 0
    bytes: int = 0
    crc: int = 0
    closed: bool = False

    @property
    def full_name(self) -> str:
        return f"{self.database}.{self.collection}"

    @property
    def is_view(self) -> bool:
        return str(self.metadata.get("type", "collection")) == "view"


@dataclass
class ArchiveContents:
    header: dict[str, Any]
    namespaces: dict[tuple[str, str], Namespace] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (namespace, why)

    @property
    def kept(self) -> list[Namespace]:
        return [self.namespaces[key] for key in sorted(self.namespaces)]

    @property
    def documents(self) -> int:
        return sum(ns.documents for ns in self.namespaces.values())

    @property
    def bytes(self) -> int:
        return sum(ns.bytes for ns in self.namespaces.values())


DocumentSink = Callable[[Namespace, bytes, Any], None]


def skip_reason(database: str, collection: str) -> str | None:
    """Why a namespace is not imported (the MongoDB source never captures these)."""
    if not database:
        return "the oplog (mongodump --oplog) is not imported"
    if collection.startswith("system."):
        return "a system collection (users, roles, views: the server's own)"
    return None


class _Reader:
    def __init__(self, stream: IO[bytes], where: str) -> None:
        self.stream, self.where = stream, where

    def corrupt(self, detail: str) -> ExportCorrupted:
        return ExportCorrupted(path=self.where, detail=detail)

    def exact(self, size: int, what: str) -> bytes:
        try:
            data = self.stream.read(size)
        except _READ_ERRORS as exc:
            raise self.corrupt(f"cannot read it ({exc})") from exc
        if len(data) != size:
            raise self.corrupt(f"it ends inside {what} (truncated)")
        return data

    def document_or_terminator(self, what: str, eof_ok: bool = False) -> bytes | None:
        """The next BSON document's bytes; None at the terminator (or at the end of the
        file, where that is allowed)."""
        try:
            head = self.stream.read(4)
        except _READ_ERRORS as exc:
            raise self.corrupt(f"cannot read it ({exc})") from exc
        if not head and eof_ok:
            return None
        if len(head) < 4:
            raise self.corrupt(f"it ends inside {what} (truncated)")
        if head == _TERMINATOR:
            return None
        (length,) = _LENGTH.unpack(head)
        if length < 5 or length > _MAX_DOCUMENT:
            raise self.corrupt(f"{what} has an impossible length {length}")
        body = self.exact(length - 4, what)
        if body[-1:] != b"\x00":
            raise self.corrupt(f"{what} does not end with a NUL byte")
        return head + body

    def decode(self, raw: bytes, what: str) -> dict[str, Any]:
        try:
            return dict(decode_document(raw))
        except (BSONError, ValueError, OverflowError) as exc:
            raise self.corrupt(f"{what} is not valid BSON ({exc})") from exc


def read_archive(stream: IO[bytes], where: str, sink: DocumentSink | None = None
                 ) -> ArchiveContents:
    """Read and check a whole archive; every kept document goes to `sink` with its
    `_id`. Raises ExportCorrupted on anything wrong; nothing is returned half-read."""
    reader = _Reader(stream, where)
    if reader.exact(4, "the magic number") != MAGIC:
        raise reader.corrupt("it does not start with the mongodump archive magic number")
    header_raw = reader.document_or_terminator("the archive header")
    if header_raw is None:
        raise reader.corrupt("the archive header is missing")
    contents = ArchiveContents(reader.decode(header_raw, "the archive header"))
    skipped: dict[tuple[str, str], Namespace] = {}
    while (raw := reader.document_or_terminator("a collection's metadata")) is not None:
        _prelude_entry(reader, reader.decode(raw, "a collection's metadata"), contents,
                       skipped)
    while (raw := reader.document_or_terminator("a namespace header", eof_ok=True)) is not None:
        _segment(reader, reader.decode(raw, "a namespace header"), contents, skipped, sink)
    for ns in contents.namespaces.values():
        if not ns.closed and not ns.is_view:
            raise reader.corrupt(f"{ns.full_name} has no end marker (truncated)")
    return contents


def _prelude_entry(reader: _Reader, doc: dict[str, Any], contents: ArchiveContents,
                   skipped: dict[tuple[str, str], Namespace]) -> None:
    database, collection = doc.get("db"), doc.get("collection")
    if not isinstance(database, str) or not isinstance(collection, str):
        raise reader.corrupt("a collection's metadata lacks its db or collection name")
    try:
        metadata = load_json(str(doc.get("metadata") or "{}"))
    except ValueError as exc:
        raise reader.corrupt(f"the metadata of {database}.{collection} is not "
                             f"extended JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise reader.corrupt(f"the metadata of {database}.{collection} is not a document")
    key = (database, collection)
    ns = Namespace(database, collection, dict(metadata))
    why = skip_reason(database, collection)
    if why is not None:
        skipped[key] = ns
        contents.skipped.append((ns.full_name, why))
    elif key in contents.namespaces:
        raise reader.corrupt(f"{ns.full_name} is described twice")
    else:
        contents.namespaces[key] = ns


def _segment(reader: _Reader, header: dict[str, Any], contents: ArchiveContents,
             skipped: dict[tuple[str, str], Namespace], sink: DocumentSink | None) -> None:
    key = (str(header.get("db", "")), str(header.get("collection", "")))
    name = f"{key[0]}.{key[1]}"
    ns = contents.namespaces.get(key)
    ignored = ns is None and key in skipped
    if ns is None and not ignored:
        if skip_reason(*key) is None:
            raise reader.corrupt(f"data for {name}, which the archive's prelude does not "
                                 "describe")
        ns = Namespace(key[0], key[1], {})  # the oplog: read past, never kept
        skipped[key] = ns
        contents.skipped.append((name, skip_reason(*key) or ""))
        ignored = True
    if ns is None:
        ns = skipped[key]
    if ns.closed:
        raise reader.corrupt(f"data for {name} after its end marker")
    if header.get("EOF"):
        if reader.document_or_terminator(f"the end marker of {name}") is not None:
            raise reader.corrupt(f"the end marker of {name} is followed by data")
        expected = int(header.get("CRC", 0)) & 0xFFFFFFFFFFFFFFFF
        if expected != ns.crc:
            raise reader.corrupt(f"the checksum of {name} does not match its documents "
                                 f"(CRC-64 {ns.crc:016x}, archive says {expected:016x})")
        ns.closed = True
        return
    while (raw := reader.document_or_terminator(f"a document of {name}")) is not None:
        ns.crc = crc64_update(ns.crc, raw)
        ns.documents += 1
        ns.bytes += len(raw)
        if ignored:
            continue
        document = reader.decode(raw, f"document {ns.documents} of {name}")
        if "_id" not in document:
            raise reader.corrupt(f"document {ns.documents} of {name} has no _id")
        if sink is not None:
            sink(ns, raw, document["_id"])


def open_archive(path: Path) -> BinaryIO:
    """The archive's bytes, gunzipped when it is gzipped (mongodump --archive --gzip)."""
    raw = open(path, "rb")  # noqa: SIM115  # closed with the GzipFile, or by the caller
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def check_archive(path: Path) -> ArchiveContents:
    """Read the whole archive to check it, keeping nothing (the preview's figures)."""
    with open_archive(path) as stream:
        contents = read_archive(stream, str(path))
    if not contents.namespaces:
        from vault.errors import NothingToImport

        raise NothingToImport(path=str(path), detail="the archive holds no collection "
                              "the MongoDB source imports"
                              + (f"; skipped {len(contents.skipped)}" if contents.skipped
                                 else ""))
    return contents


# --- spooling, sorting, and the items ----------------------------------------------------


class Spool:
    """The kept documents, one scratch file per collection, with where each one is and its
    `_id`'s sort key; read back in `_id` order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, IO[bytes]] = {}
        self._index: dict[str, list[tuple[tuple[Any, ...], int, int]]] = {}
        self._ids: dict[str, set[tuple[Any, ...]]] = {}
        self.duplicate: str | None = None

    def add(self, ns: Namespace, raw: bytes, _id: Any) -> None:
        name = ns.full_name
        spool = self._files.get(name)
        if spool is None:
            spool = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115  # close()
            self._files[name], self._index[name], self._ids[name] = spool, [], set()
        key = id_sort_key(_id)
        if key in self._ids[name] and self.duplicate is None:
            self.duplicate = f"the _id {_id!r} appears twice in {name}"
        self._ids[name].add(key)
        self._index[name].append((key, spool.tell(), len(raw)))
        spool.write(raw)

    def sorted_documents(self, name: str) -> Iterator[bytes]:
        """The collection's documents in `_id` order, joined into pieces."""
        index = self._index.get(name, [])
        spool = self._files.get(name)
        ordered = sorted(index, key=lambda entry: entry[0])
        piece = bytearray()
        if spool is not None:
            spool.flush()
            for _key, offset, length in ordered:
                spool.seek(offset)
                piece += spool.read(length)
                if len(piece) >= _PIECE:
                    yield bytes(piece)
                    piece.clear()
        yield bytes(piece)

    def close(self) -> None:
        for spool in self._files.values():
            spool.close()
        self._files.clear()


def metadata_item(ns: Namespace) -> bytes:
    """`<db>/<coll>.metadata.json` as the capture writes it (its keys, in its order)."""
    meta = ns.metadata
    indexes = meta.get("indexes") or []
    return dump_json({"collectionName": ns.collection,
                      "type": str(meta.get("type", "collection")),
                      "options": meta.get("options") or {},
                      "indexes": sorted(indexes, key=lambda spec: str(spec.get("name")))})


def source_items(contents: ArchiveContents, spool: Spool) -> list[SourceItem]:
    items: list[SourceItem] = []
    for ns in contents.kept:
        data = metadata_item(ns)
        items.append(SourceItem(item_path(ns.database, ns.collection, METADATA_SUFFIX),
                                stream_of(partial(list, [data])), size_hint=len(data)))
        if ns.is_view:
            continue
        name = ns.full_name
        items.append(SourceItem(item_path(ns.database, ns.collection, BSON_SUFFIX),
                                stream_of(partial(spool.sorted_documents, name)),
                                size_hint=ns.bytes))
    return items


def capture_meta(contents: ArchiveContents) -> dict[str, Any]:
    """The snapshot's meta in the capture's shape: what `vault ls`/restore read."""
    return {
        "server": {"version": contents.header.get("server_version") or None},
        # mongodump without --oplog reads each collection as it is while it is read
        "consistency": "per-collection",
        "filters": {},
        "collections": {ns.full_name: {"documents": ns.documents, "bytes": ns.bytes}
                        for ns in contents.kept if not ns.is_view},
    }


def source_name(contents: ArchiveContents) -> str:
    """The snapshot's source name: the one database's name, else "mongodb" (as an ad-hoc
    `mongodb://host/` source is named)."""
    databases = sorted({ns.database for ns in contents.kept})
    return databases[0] if len(databases) == 1 else "mongodb"


def preview(path: Path, contents: ArchiveContents) -> dict[str, Any]:
    return {"format": "mongodump", "file": str(path.resolve()),
            "server_version": contents.header.get("server_version"),
            "tool_version": contents.header.get("tool_version"),
            "collections": {ns.full_name: ns.documents for ns in contents.kept},
            "documents": contents.documents, "files": 2 * len(contents.kept)
            - sum(ns.is_view for ns in contents.kept), "bytes": contents.bytes,
            "refused": [],
            "skipped": [{"path": name, "why": why} for name, why in contents.skipped]}

