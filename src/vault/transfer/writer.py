"""Writing an export file: framing, compression, optional sealing and the checksum."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard

from vault.transfer.format import (
    END_MAGIC,
    KEY_PASSPHRASE,
    Encryption,
    RecordKind,
    RecordSealer,
    SecretsSealer,
    encode_preamble,
    encode_record,
)


@dataclass(frozen=True)
class ExportKey:
    """The passphrase an export is encrypted with, and where it came from (KEY_*)."""

    passphrase: str
    source: str = KEY_PASSPHRASE
    repo_id: str | None = None

    def __repr__(self) -> str:  # never print the passphrase
        return f"ExportKey(source={self.source!r})"


class ExportWriter:
    """Appends records to `stream`, hashing every byte; `finish()` writes the trailer."""

    def __init__(self, stream: BinaryIO, header: dict[str, Any],
                 key: ExportKey | None = None, level: int = 3) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self._compressor = zstandard.ZstdCompressor(level=level, write_content_size=True)
        self._sealer: RecordSealer | None = None
        self.records = 0
        self.bytes_plain = 0
        self.bytes_written = 0
        if key is not None:
            encryption = Encryption.new()
            self._sealer = RecordSealer(encryption.derive(key.passphrase))
            header = {**header, "encryption": encryption.to_json(
                self._sealer.check_value(), key.source, key.repo_id)}
        else:
            header = {**header, "encryption": None}
        self._write(encode_preamble(header))

    @property
    def secrets_sealer(self) -> SecretsSealer | None:
        return None if self._sealer is None else self._sealer.secrets_sealer()

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        self._stream.write(data)
        self.bytes_written += len(data)

    def add(self, kind: RecordKind, plain: bytes) -> None:
        self.records += 1
        self.bytes_plain += len(plain)
        payload = self._compressor.compress(plain)
        if self._sealer is not None:
            payload = self._sealer.seal(int(kind), self.records, payload)
        self._write(encode_record(kind, payload))

    def finish(self) -> None:
        count = str(self.records).encode()
        if self._sealer is not None:  # authenticated: records cut off at the end show
            count = self._sealer.seal(int(RecordKind.END), self.records + 1, count)
        self._write(encode_record(RecordKind.END, count))
        digest = self._hash.digest()
        self._stream.write(END_MAGIC + digest)
        self.bytes_written += len(END_MAGIC) + len(digest)
