"""Reading an export file of any supported version, checking it before anything is used.

`open_export` checks what can be checked without the passphrase, in one pass over the
file: the magic (a foreign file), the version (a newer vault's file), the end marker (a
truncated file) and the SHA-256 over every byte (a damaged file). Only then are records
decoded. Each format version has a `Dialect` in `DIALECTS`: how its payloads decode and
how its metadata upgrades to the current shape, so an old export stays importable.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag

from vault.errors import (
    ExportCorrupted,
    ExportPassphraseNeeded,
    ExportPassphraseWrong,
    ExportTruncated,
    NotAnExport,
    UnsupportedExportVersion,
)
from vault.transfer.format import (
    END_MAGIC,
    FORMAT_VERSION,
    KEY_PASSPHRASE,
    KEY_REPOSITORY,
    MAGIC,
    MAX_HEADER,
    MAX_RECORD,
    PREAMBLE,
    RECORD,
    TRAILER_SIZE,
    Encryption,
    FormatError,
    RecordKind,
    RecordSealer,
    SecretsSealer,
    unpack_payload,
)


@dataclass(frozen=True)
class Dialect:
    """What differs between export format versions."""

    #: payload bytes -> plaintext (sealer is None for an unencrypted file)
    decode: Callable[[RecordKind, int, bytes, RecordSealer | None], bytes]
    #: the metadata record as written -> the current shape
    upgrade_meta: Callable[[dict[str, Any]], dict[str, Any]]
    #: whether the records end with an END record holding their count
    end_record: bool
    #: whether an encrypted file's END record is sealed (version 2 on)
    sealed_end: bool = False


def _decode_v1(kind: RecordKind, seq: int, payload: bytes, sealer: RecordSealer | None) -> bytes:
    if sealer is not None:
        try:
            payload = sealer.open(int(kind), seq, payload)
        except InvalidTag as exc:
            raise FormatError(f"record {seq} fails authentication") from exc
    return unpack_payload(payload)


def _decode_v0(kind: RecordKind, seq: int, payload: bytes, sealer: RecordSealer | None) -> bytes:
    return payload  # version 0 stored records uncompressed and never encrypted


def _upgrade_meta_v0(meta: dict[str, Any]) -> dict[str, Any]:
    """Version 0 named the root tree `tree_root` and did not count its records."""
    upgraded = {k: v for k, v in meta.items() if k != "tree_root"}
    upgraded["root"] = meta["tree_root"]
    upgraded.setdefault("counts", {})
    return _upgrade_meta_v1(upgraded)


def _upgrade_meta_v1(meta: dict[str, Any]) -> dict[str, Any]:
    """Version 1 held one snapshot at the top level; version 2 lists `members`."""
    member = {"snapshot": meta["snapshot"], "snapshot_id": meta.get("snapshot_id"),
              "root": meta["root"], "settings_sealed": False}
    rest = {k: v for k, v in meta.items() if k not in ("snapshot", "snapshot_id", "root")}
    return {**rest, "members": [member], "group": None}


DIALECTS: dict[int, Dialect] = {
    0: Dialect(_decode_v0, _upgrade_meta_v0, end_record=False),
    1: Dialect(_decode_v1, _upgrade_meta_v1, end_record=True),
    2: Dialect(_decode_v1, lambda meta: meta, end_record=True, sealed_end=True),
}


class ExportFile:
    """An export file whose framing and checksum have been verified."""

    def __init__(self, path: Path, version: int, header: dict[str, Any], body_start: int,
                 body_end: int) -> None:
        self.path = path
        self.version = version
        self.header = header
        self._body = (body_start, body_end)
        self._dialect = DIALECTS[version]
        self._sealer: RecordSealer | None = None
        self.encryption = header.get("encryption")

    @property
    def encrypted(self) -> bool:
        return bool(self.encryption)

    @property
    def size(self) -> int:
        return self._body[1] + TRAILER_SIZE

    @property
    def key_source(self) -> str | None:
        """KEY_REPOSITORY or KEY_PASSPHRASE for an encrypted file (None: unencrypted)."""
        if not self.encryption:
            return None
        return str(self.encryption.get("key", KEY_PASSPHRASE))

    @property
    def secrets_sealer(self) -> SecretsSealer | None:
        return None if self._sealer is None else self._sealer.secrets_sealer()

    def _whose(self) -> str:
        if self.key_source == KEY_REPOSITORY:
            repo = str(self.encryption.get("repo_id") or "")[:12] if self.encryption else ""
            return f" with the passphrase of the repository it came from ({repo})"
        return " with a passphrase of its own"

    def unlock(self, passphrase: str | None) -> None:
        if not self.encryption or (passphrase is None and self._sealer is not None):
            return
        if passphrase is None:
            raise ExportPassphraseNeeded(path=str(self.path), whose=self._whose())
        if not self.try_unlock(passphrase):
            raise ExportPassphraseWrong(path=str(self.path), whose=self._whose())

    def try_unlock(self, passphrase: str) -> bool:
        """Whether `passphrase` opens the file (kept when it does)."""
        if not self.encryption:
            return True
        try:
            encryption, check = Encryption.from_json(self.encryption)
        except FormatError as exc:
            raise ExportCorrupted(path=str(self.path), detail=str(exc)) from exc
        sealer = RecordSealer(encryption.derive(passphrase), self.version)
        if not sealer.opens_check(check):
            return False
        self._sealer = sealer
        return True

    def meta(self) -> dict[str, Any]:
        """The snapshot metadata (first record), in the current shape."""
        for kind, plain in self._records():
            if kind != RecordKind.META:
                break
            try:
                meta = self._dialect.upgrade_meta(json.loads(plain))
            except (ValueError, KeyError, TypeError) as exc:
                raise self._damaged(f"bad metadata record: {exc}") from exc
            return meta
        raise self._damaged("the first record is not the snapshot's metadata")

    def records(self) -> Iterator[tuple[RecordKind, bytes]]:
        """Every data and tree record after the metadata, decoded."""
        records = self._records()
        next(records, None)
        yield from records

    def _records(self) -> Iterator[tuple[RecordKind, bytes]]:
        if self.encrypted and self._sealer is None:
            raise ExportPassphraseNeeded(path=str(self.path), whose=self._whose())
        start, end = self._body
        seq = 0
        with open(self.path, "rb") as stream:
            stream.seek(start)
            while stream.tell() < end:
                head = self._read(stream, RECORD.size)
                kind_value, length = RECORD.unpack(head)
                if length > MAX_RECORD or stream.tell() + length > end:
                    raise self._damaged(f"record {seq + 1} has an impossible length {length}")
                try:
                    kind = RecordKind(kind_value)
                except ValueError as exc:
                    raise self._damaged(f"record {seq + 1} has unknown kind {kind_value}") \
                        from exc
                payload = self._read(stream, length)
                if kind == RecordKind.END:
                    if stream.tell() != end or self._end_count(payload, seq) != seq:
                        raise self._damaged("the end record does not close the file")
                    return
                seq += 1
                try:
                    yield kind, self._dialect.decode(kind, seq, payload, self._sealer)
                except FormatError as exc:
                    raise self._damaged(str(exc)) from exc
        if self._dialect.end_record:
            raise self._damaged("the records end without an end record")

    def _end_count(self, payload: bytes, seq: int) -> int | None:
        """The record count the END record holds (authenticated when sealed)."""
        if self._sealer is not None and self._dialect.sealed_end:
            try:
                payload = self._sealer.open(int(RecordKind.END), seq + 1, payload)
            except InvalidTag:
                return None
        return int(payload) if payload.isdigit() else None

    def _read(self, stream: BinaryIO, n: int) -> bytes:
        try:
            return _read_exact(stream, n)
        except FormatError as exc:
            raise self._damaged(str(exc)) from exc

    def _damaged(self, detail: str) -> ExportCorrupted:
        return ExportCorrupted(path=str(self.path), detail=detail)


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise FormatError("unexpected end of file")
    return data


def is_export(head: bytes) -> bool:
    return head.startswith(MAGIC)


def open_export(path: Path) -> ExportFile:
    """Check framing, version, end marker and checksum; refuse anything else clearly."""
    where = str(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as stream:
            preamble = stream.read(PREAMBLE.size)
            if not preamble.startswith(MAGIC[: len(preamble)]) or len(preamble) < len(MAGIC):
                raise NotAnExport(path=where, detail=f"it starts with {preamble[:8]!r}")
            if len(preamble) < PREAMBLE.size:
                raise ExportTruncated(path=where, detail=f"only {size} bytes")
            _magic, version, header_len = PREAMBLE.unpack(preamble)
            if version > FORMAT_VERSION or version not in DIALECTS:
                raise UnsupportedExportVersion(path=where, version=version,
                                               supported=FORMAT_VERSION)
            body_end = size - TRAILER_SIZE
            if header_len > MAX_HEADER or PREAMBLE.size + header_len > body_end:
                raise _truncated_or_damaged(path, stream, size)
            header_bytes = stream.read(header_len)
            stream.seek(body_end)
            trailer = stream.read(TRAILER_SIZE)
            if not trailer.startswith(END_MAGIC):
                raise ExportTruncated(path=where, detail=f"no end marker after {size} bytes")
            digest = hashlib.sha256()
            stream.seek(0)
            remaining = body_end
            while remaining:
                block = stream.read(min(remaining, 1 << 20))
                if not block:
                    raise ExportTruncated(path=where, detail="shorter than it was a moment ago")
                digest.update(block)
                remaining -= len(block)
    except OSError as exc:
        raise NotAnExport(path=where, detail=exc.strerror or str(exc)) from exc
    if digest.digest() != trailer[len(END_MAGIC):]:
        raise ExportCorrupted(path=where, detail="SHA-256 checksum mismatch (the file was "
                              "changed or damaged after it was written)")
    try:
        header = json.loads(header_bytes)
        if not isinstance(header, dict) or header.get("format") != "vault-export":
            raise ValueError("not a vault-export header")
    except ValueError as exc:
        raise ExportCorrupted(path=where, detail=f"bad header: {exc}") from exc
    return ExportFile(path, version, header, PREAMBLE.size + header_len, body_end)


def _truncated_or_damaged(path: Path, stream: BinaryIO, size: int) -> ExportCorrupted:
    stream.seek(max(size - TRAILER_SIZE, 0))
    if stream.read(TRAILER_SIZE).startswith(END_MAGIC):
        return ExportCorrupted(path=str(path), detail="impossible header length")
    return ExportTruncated(path=str(path), detail=f"no end marker after {size} bytes")
