"""Writing an export file: framing, compression, optional sealing and the checksum."""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO

import zstandard

from vault.transfer.format import (
    END_MAGIC,
    Encryption,
    RecordKind,
    RecordSealer,
    encode_preamble,
    encode_record,
)


class ExportWriter:
    """Appends records to `stream`, hashing every byte; `finish()` writes the trailer."""

    def __init__(self, stream: BinaryIO, header: dict[str, Any],
                 passphrase: str | None = None, level: int = 3) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self._compressor = zstandard.ZstdCompressor(level=level, write_content_size=True)
        self._sealer: RecordSealer | None = None
        self.records = 0
        self.bytes_plain = 0
        self.bytes_written = 0
        if passphrase is not None:
            encryption = Encryption.new()
            self._sealer = RecordSealer(encryption.derive(passphrase))
            header = {**header, "encryption": encryption.to_json(self._sealer.check_value())}
        else:
            header = {**header, "encryption": None}
        self._write(encode_preamble(header))

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
        self._write(encode_record(RecordKind.END, str(self.records).encode()))
        digest = self._hash.digest()
        self._stream.write(END_MAGIC + digest)
        self.bytes_written += len(END_MAGIC) + len(digest)
