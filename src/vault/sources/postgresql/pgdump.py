"""`pg_dump -Fc` files read as PostgreSQL source items.

The PostgreSQL source stores `database.pgdump` (a custom-format archive of everything but
the tables' rows) and `tables/<schema>/<table>.sql` (each table's rows as a plain COPY
block), and its restore loads them in that split: definitions, rows, the rest of the data,
post-data. A whole foreign dump cannot be `database.pgdump` (its rows would load twice),
so the import splits it the same way:

- `database.pgdump` is the file itself rewritten without its TABLE DATA entries: the
  header bytes and every other table-of-contents entry are copied as they are, as are the
  data blocks that remain (large objects); nothing is decompressed or re-encoded. This is
  what `pg_dump --exclude-table-data` would have written for every table.
- each table's rows come from `pg_restore --data-only --use-list` of that one entry,
  written to stdout: the same plain COPY block `pg_dump --data-only --table` writes.

Reading the archive (format 1.12 = PostgreSQL 9.0 up to 1.16 = PostgreSQL 17/18) checks
its framing first: every TOC entry and data block parses and the file ends where the
last block does, so a damaged or truncated dump is refused before anything is stored.
Table metadata (primary key, owned sequences, encoding) is read from the entries'
definitions, as the capture reads it from the catalog.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from vault.errors import ExportCorrupted, NotAnExport
from vault.sources.base import SourceItem, stream_of
from vault.sources.postgresql.client import find_clients
from vault.sources.postgresql.tools import (
    SCHEMA_ITEM,
    CopyRowCounter,
    drop_lines,
    first_error,
    table_item_path,
)

MAGIC = b"PGDMP"
FORMAT = 1  # the PostgreSQL source's item format (postgresql.py FORMAT)
_CUSTOM = 1  # archive format byte: custom (-Fc); 3 would be tar, 5 directory
_OLDEST, _NEWEST = (1, 12, 0), (1, 16, 0)
_BLK_DATA, _BLK_BLOBS = 1, 3
_OFFSET_NOT_SET, _OFFSET_SET, _NO_DATA = 1, 2, 3
_MAX_STRING = 1 << 30  # a definition longer than 1 GiB is a damaged length
_READ = 1 << 20


@dataclass
class TocEntry:
    dump_id: int
    had_dumper: bool
    tag: str
    desc: str
    namespace: str
    defn: str
    deps: list[int]
    head: bytes  # the entry's bytes up to its dependency list, copied as they are
    data_state: int
    data_bytes: int = 0  # the length of its data block, framing included


@dataclass
class PgDump:
    path: Path
    version: tuple[int, int, int]
    int_size: int
    off_size: int
    header: bytes  # everything before the TOC count, copied as it is
    dbname: str
    server_version: str
    dump_version: str
    entries: list[TocEntry] = field(default_factory=list)
    data_start: int = 0
    block_order: list[int] = field(default_factory=list)  # dump ids, in file order

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def table_entries(self) -> list[TocEntry]:
        return [e for e in self.entries if e.desc == "TABLE DATA"]


class _Reader:
    def __init__(self, stream: IO[bytes], where: str) -> None:
        self.stream, self.where = stream, where
        self.int_size = 4

    def corrupt(self, detail: str) -> ExportCorrupted:
        return ExportCorrupted(path=self.where, detail=detail)

    def exact(self, size: int, what: str) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise self.corrupt(f"it ends inside {what} (truncated)")
        return data

    def byte(self, what: str) -> int:
        return self.exact(1, what)[0]

    def int_(self, what: str) -> int:
        sign = self.byte(what)
        value = int.from_bytes(self.exact(self.int_size, what), "little")
        if sign not in (0, 1):
            raise self.corrupt(f"{what} has an impossible sign byte {sign}")
        return -value if sign else value

    def str_(self, what: str) -> str | None:
        length = self.int_(what)
        if length < 0:
            return None
        if length > _MAX_STRING:
            raise self.corrupt(f"{what} has an impossible length {length}")
        return self.exact(length, what).decode("utf-8", "replace")


def encode_int(value: int, int_size: int) -> bytes:
    return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(int_size, "little")


def encode_str(value: str | None, int_size: int) -> bytes:
    if value is None:
        return encode_int(-1, int_size)
    data = value.encode()
    return encode_int(len(data), int_size) + data


def _header(reader: _Reader, path: Path) -> PgDump:
    if reader.stream.read(5) != MAGIC:
        raise NotAnExport(path=str(path), detail="it does not start with PGDMP")
    version = tuple(reader.exact(3, "the header"))
    if not _OLDEST <= version <= _NEWEST:
        raise reader.corrupt(f"archive version {'.'.join(map(str, version))} is not one "
                             "this vault reads (1.12 to 1.16: PostgreSQL 9.0 to 18)")
    int_size, off_size, fmt = reader.exact(3, "the header")
    if not 1 <= int_size <= 8 or not 1 <= off_size <= 16:
        raise reader.corrupt(f"impossible integer sizes {int_size}/{off_size} in the header")
    if fmt != _CUSTOM:
        raise reader.corrupt("it is a pg_dump archive, but not of the custom format (-Fc): "
                             "make one with pg_dump --format=custom")
    reader.int_size = int_size
    if version >= (1, 15, 0):
        reader.byte("the header")  # compression algorithm
    else:
        reader.int_("the header")  # compression level
    for _ in range(7):  # the time it was made
        reader.int_("the header")
    dbname = reader.str_("the header") or ""
    server = reader.str_("the header") or ""
    dumped_by = reader.str_("the header") or ""
    return PgDump(path, (version[0], version[1], version[2]), int_size, off_size, b"",
                  dbname, server, dumped_by)


def _toc(reader: _Reader, dump: PgDump) -> None:
    count = reader.int_("the table of contents")
    if count < 0 or count > 10_000_000:
        raise reader.corrupt(f"impossible table of contents size {count}")
    stream = reader.stream
    for index in range(count):
        what = f"table of contents entry {index + 1}"
        start = stream.tell()
        dump_id = reader.int_(what)
        if dump_id <= 0:
            raise reader.corrupt(f"{what} has an impossible id {dump_id}")
        had_dumper = reader.int_(what) != 0
        reader.str_(what)  # table oid
        reader.str_(what)  # oid
        tag = reader.str_(what) or ""
        desc = reader.str_(what) or ""
        reader.int_(what)  # section
        defn = reader.str_(what) or ""
        reader.str_(what)  # drop statement
        reader.str_(what)  # copy statement
        namespace = reader.str_(what) or ""
        reader.str_(what)  # tablespace
        if dump.version >= (1, 14, 0):
            reader.str_(what)  # table access method
        if dump.version >= (1, 16, 0):
            reader.int_(what)  # relkind
        reader.str_(what)  # owner
        reader.str_(what)  # "false": WITH OIDS
        deps_at = stream.tell()
        deps = []
        while (dep := reader.str_(what)) is not None:
            if not dep.strip().isdigit():
                raise reader.corrupt(f"{what} has a dependency {dep!r} that is not an id")
            deps.append(int(dep))
        state = reader.byte(what)
        if state not in (_OFFSET_NOT_SET, _OFFSET_SET, _NO_DATA):
            raise reader.corrupt(f"{what} has an impossible data offset flag {state}")
        reader.exact(dump.off_size, what)
        end = stream.tell()
        stream.seek(start)
        head = stream.read(deps_at - start)
        stream.seek(end)
        dump.entries.append(TocEntry(dump_id, had_dumper, tag, desc, namespace, defn, deps,
                                     head, state))
    dump.data_start = stream.tell()


def _skip_chunks(reader: _Reader, what: str) -> None:
    while (length := reader.int_(what)) != 0:
        if length < 0 or length > _MAX_STRING:
            raise reader.corrupt(f"{what} has a chunk of impossible length {length}")
        if len(reader.stream.read(length)) != length:
            raise reader.corrupt(f"it ends inside {what} (truncated)")


def _blocks(reader: _Reader, dump: PgDump) -> None:
    """Walk every data block, checking its framing; record each block's length."""
    by_id = {e.dump_id: e for e in dump.entries}
    stream = reader.stream
    while True:
        start = stream.tell()
        kind = stream.read(1)
        if not kind:
            break
        dump_id = reader.int_("a data block header")
        entry = by_id.get(dump_id)
        what = f"the data of {entry.desc} {entry.tag}" if entry else f"data block {dump_id}"
        if entry is None:
            raise reader.corrupt(f"a data block belongs to no entry (id {dump_id})")
        if kind[0] == _BLK_DATA:
            _skip_chunks(reader, what)
        elif kind[0] == _BLK_BLOBS:
            while reader.int_(what) != 0:  # a large object's oid, then its data
                _skip_chunks(reader, what)
        else:
            raise reader.corrupt(f"a data block of unknown type {kind[0]}")
        if entry.data_bytes:
            raise reader.corrupt(f"{what} appears twice")
        entry.data_bytes = stream.tell() - start
        dump.block_order.append(dump_id)
    for entry in dump.table_entries():
        if not entry.data_bytes:
            raise reader.corrupt(f"the rows of {entry.namespace}.{entry.tag} are missing "
                                 "(truncated?)")


def check_dump(path: Path) -> PgDump:
    """Read and check the whole archive (header, table of contents, data framing)."""
    try:
        with open(path, "rb") as stream:
            reader = _Reader(stream, str(path))
            dump = _header(reader, path)
            header_end = stream.tell()
            stream.seek(0)
            dump.header = stream.read(header_end)
            _toc(reader, dump)
            _blocks(reader, dump)
    except OSError as exc:
        raise ExportCorrupted(path=str(path), detail=exc.strerror or str(exc)) from exc
    if not dump.table_entries():
        from vault.errors import NothingToImport

        raise NothingToImport(path=str(path), detail="the dump holds no table's rows "
                              "(made with --schema-only?)")
    return dump


# --- the schema item: the archive without its tables' rows ---------------------------------


def schema_archive(dump: PgDump, out: IO[bytes]) -> int:
    """Write the archive without its TABLE DATA entries to `out`; its size."""
    dropped = {e.dump_id for e in dump.table_entries()}
    kept = [e for e in dump.entries if e.dump_id not in dropped]
    written = out.write(dump.header)
    written += out.write(encode_int(len(kept), dump.int_size))
    for entry in kept:
        written += out.write(entry.head)
        for dep in entry.deps:
            if dep not in dropped:
                written += out.write(encode_str(str(dep), dump.int_size))
        written += out.write(encode_str(None, dump.int_size))
        # Offsets are not kept: pg_restore reads the blocks in order, as from a pipe.
        state = _OFFSET_NOT_SET if entry.data_bytes else _NO_DATA
        written += out.write(bytes([state]) + bytes(dump.off_size))
    by_id = {e.dump_id: e for e in dump.entries}
    with open(dump.path, "rb") as source:
        source.seek(dump.data_start)
        for dump_id in dump.block_order:
            length = by_id[dump_id].data_bytes
            if dump_id in dropped:
                source.seek(length, os.SEEK_CUR)
                continue
            while length:
                part = source.read(min(length, _READ))
                if not part:
                    raise ExportCorrupted(path=str(dump.path), detail="it changed while "
                                          "being read")
                written += out.write(part)
                length -= len(part)
    return written


# --- the table items ---------------------------------------------------------------------


@dataclass
class Converted:
    items: list[SourceItem]
    meta: dict[str, Any]
    bytes_total: int


def convert(path: Path, dump: PgDump, scratch: Path) -> Converted:
    """The snapshot's items and meta. The schema item is written to `scratch` (it must
    outlive this call until the items are stored); table items stream from pg_restore."""
    schema = scratch / SCHEMA_ITEM
    with open(schema, "wb") as out:
        schema_size = schema_archive(dump, out)
    keys = primary_keys(dump)
    sequences = owned_sequences(dump)
    clients = find_clients(None)
    restrict = "--restrict-key" in subprocess.run(
        [clients.pg_restore, "--help"], capture_output=True, text=True, check=False).stdout
    tables: list[dict[str, Any]] = []
    items = [SourceItem(SCHEMA_ITEM, stream_of(lambda: _file_parts(schema)),
                        size_hint=schema_size)]
    for entry in dump.table_entries():
        item = table_item_path(entry.namespace, entry.tag)
        record: dict[str, Any] = {"schema": entry.namespace, "name": entry.tag,
                                  "item": item, "rows": None,
                  "estimated_rows": 0, "bytes": entry.data_bytes,
                  "sequences": sequences.get((entry.namespace, entry.tag), []),
                  "key": keys.get((entry.namespace, entry.tag), [])}
        tables.append(record)
        listing = scratch / f"entry-{entry.dump_id}.list"
        listing.write_text(f"{entry.dump_id}; 0 0 TABLE DATA\n")
        rows = partial(_table_rows, clients.pg_restore, path, listing, record, restrict)
        items.append(SourceItem(item, stream_of(rows), size_hint=entry.data_bytes))
    meta: dict[str, Any] = {
        "format": FORMAT, "database": dump.dbname, "server_version": dump.server_version,
        "server_version_num": version_num(dump.server_version),
        "pg_dump_version": dump.dump_version, "encoding": encoding(dump),
        "database_size": None, "snapshot": None,
        "large_objects": sum(1 for e in dump.entries if e.desc in ("BLOB", "BLOB METADATA")),
        "rows": "exact", "tables": tables,
    }
    total = schema_size + sum(e.data_bytes for e in dump.table_entries())
    return Converted(items, meta, total)


def _file_parts(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while part := stream.read(_READ):
            yield part


def _table_rows(pg_restore: str, path: Path, listing: Path, record: dict[str, Any],
                restrict: bool) -> Iterator[bytes]:
    argv = [pg_restore, "--data-only", f"--use-list={listing}", "--file=-"]
    strip: tuple[bytes, ...] = ()
    if restrict:
        key = secrets.token_hex(16)
        argv.append(f"--restrict-key={key}")
        strip = (f"\\restrict {key}\n".encode(), f"\\unrestrict {key}\n".encode())
    argv.append(str(path))
    counter = CopyRowCounter()
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr)
        assert proc.stdout is not None
        try:
            for part in drop_lines(iter(lambda: proc.stdout.read(_READ)  # type: ignore[union-attr]
                                        , b""), strip):
                counter.feed(part)
                yield part
            if proc.wait() != 0:
                stderr.seek(0)
                said = stderr.read().decode("utf-8", "replace")
                raise ExportCorrupted(path=str(path), detail=f"pg_restore could not read "
                                      f"the rows of {record['schema']}.{record['name']}: "
                                      f"{first_error(said)}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    record["rows"] = counter.rows


# --- what the definitions say -------------------------------------------------------------

_PRIMARY_KEY = re.compile(r"ALTER TABLE ONLY (?P<table>.+?)\s+ADD CONSTRAINT .+? "
                          r"PRIMARY KEY \((?P<columns>.*)\)", re.DOTALL)
_OWNED_BY = re.compile(r"ALTER SEQUENCE (?P<seq>.+?) OWNED BY (?P<col>.+?);")
_IDENTITY = re.compile(r"ALTER TABLE (?:ONLY )?(?P<table>.+?) ALTER COLUMN .+? ADD "
                       r"GENERATED .+? AS IDENTITY \(\s*SEQUENCE NAME (?P<seq>\S+)", re.DOTALL)


def split_identifiers(text: str, separator: str) -> list[str]:
    """`public."my table"` -> ["public", "my table"]; quotes undone, outside quotes split."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            if quoted and text[index + 1:index + 2] == '"':
                current.append('"')
                index += 2
                continue
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current).strip())
    return parts


def primary_keys(dump: PgDump) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for entry in dump.entries:
        if entry.desc != "CONSTRAINT":
            continue
        match = _PRIMARY_KEY.search(entry.defn)
        if match is None:
            continue
        table = split_identifiers(match["table"], ".")
        if len(table) == 2:
            found[(table[0], table[1])] = split_identifiers(match["columns"], ",")
    return found


def owned_sequences(dump: PgDump) -> dict[tuple[str, str], list[str]]:
    """(schema, table) -> the names of the sequences it owns (serial and identity)."""
    found: dict[tuple[str, str], list[str]] = {}
    for entry in dump.entries:
        pairs: list[tuple[list[str], list[str]]] = []
        if entry.desc == "SEQUENCE OWNED BY":
            for match in _OWNED_BY.finditer(entry.defn):
                column = split_identifiers(match["col"], ".")
                pairs.append((split_identifiers(match["seq"], "."), column[:2]))
        elif entry.desc == "SEQUENCE":
            for match in _IDENTITY.finditer(entry.defn):
                pairs.append((split_identifiers(match["seq"], "."),
                              split_identifiers(match["table"], ".")))
        for sequence, table in pairs:
            if len(sequence) == 2 and len(table) == 2 and sequence[0] == table[0]:
                found.setdefault((table[0], table[1]), []).append(sequence[1])
    return {key: sorted(set(names)) for key, names in found.items()}


def encoding(dump: PgDump) -> str:
    for entry in dump.entries:
        if entry.desc == "ENCODING":
            match = re.search(r"'([^']+)'", entry.defn)
            if match:
                return match.group(1)
    return "UTF8"


def version_num(version: str) -> int | None:
    """150004 from "15.4", 90624 from "9.6.24" (as server_version_num)."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        return None
    major, minor, patch = int(match[1]), int(match[2]), int(match[3] or 0)
    return major * 10000 + minor if major >= 10 else major * 10000 + minor * 100 + patch


def preview(path: Path, dump: PgDump) -> dict[str, Any]:
    tables = dump.table_entries()
    return {"format": "pgdump", "file": str(path.resolve()), "database": dump.dbname,
            "server_version": dump.server_version, "pg_dump_version": dump.dump_version,
            "archive_version": dump.version_text,
            "tables": [f"{e.namespace}.{e.tag}" for e in tables],
            "files": len(tables) + 1, "bytes": path.stat().st_size, "refused": []}
