"""Pack files: many sealed blobs followed by a sealed header that lists them.

    [blob 0][blob 1]...[blob n-1][sealed header][header length: u32 little endian]

Each blob is sealed on its own (AES-256-GCM, its id as associated data, so a blob cannot
be swapped for another), so a restore reads exactly the blobs it needs. The header makes a
pack self-describing: packs written by a killed backup can be re-indexed instead of lost.
A pack's storage name is the SHA-256 of its bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from vault.repository.blob import BlobEntry, BlobType
from vault.repository.crypto import Cipher, DecryptionFailed, storage_id

_HEADER_MAGIC = b"VPK1"
_HEADER_AAD = b"vault-pack-header-v1"
_ENTRY = struct.Struct("<BB32sII")  # type, flags, id, sealed length, raw length
_TRAILER = struct.Struct("<I")


class PackFormatError(Exception):
    """The pack is truncated, or its header does not decrypt or parse."""


@dataclass
class PackBuilder:
    """Accumulates sealed blobs in memory until the pack is big enough to write."""

    cipher: Cipher
    buffer: bytearray = field(default_factory=bytearray)
    entries: list[tuple[int, int, bytes, int, int]] = field(default_factory=list)

    def add(self, blob_id: bytes, blob_type: BlobType, sealed: bytes, raw_length: int,
            flags: int) -> int:
        """Append a sealed blob; returns its offset in the pack."""
        offset = len(self.buffer)
        self.buffer += sealed
        self.entries.append((int(blob_type), flags, blob_id, len(sealed), raw_length))
        return offset

    @property
    def size(self) -> int:
        return len(self.buffer)

    def __len__(self) -> int:
        return len(self.entries)

    def finish(self) -> tuple[str, bytes, list[BlobEntry]]:
        """(pack id, pack bytes, index entries) — and the builder is emptied."""
        header = bytearray(_HEADER_MAGIC)
        header += struct.pack("<I", len(self.entries))
        for entry in self.entries:
            header += _ENTRY.pack(*entry)
        sealed_header = self.cipher.seal(bytes(header), _HEADER_AAD)
        self.buffer += sealed_header
        self.buffer += _TRAILER.pack(len(sealed_header))
        data = bytes(self.buffer)
        pack_id = storage_id(data)
        blobs = list(_entries_with_offsets(pack_id, self.entries))
        self.buffer = bytearray()
        self.entries = []
        return pack_id, data, blobs


def _entries_with_offsets(
    pack_id: str, entries: list[tuple[int, int, bytes, int, int]]
) -> list[BlobEntry]:
    result = []
    offset = 0
    for blob_type, flags, blob_id, length, raw_length in entries:
        result.append(
            BlobEntry(blob_id, BlobType(blob_type), pack_id, offset, length, raw_length, flags)
        )
        offset += length
    return result


def header_length(trailer: bytes) -> int:
    if len(trailer) != _TRAILER.size:
        raise PackFormatError("pack trailer truncated")
    return int(_TRAILER.unpack(trailer)[0])


def parse_header(cipher: Cipher, pack_id: str, sealed_header: bytes) -> list[BlobEntry]:
    try:
        header = cipher.open(sealed_header, _HEADER_AAD)
    except DecryptionFailed as exc:
        raise PackFormatError(f"pack {pack_id[:12]}: header does not decrypt") from exc
    if header[:4] != _HEADER_MAGIC:
        raise PackFormatError(f"pack {pack_id[:12]}: bad header magic")
    (count,) = struct.unpack_from("<I", header, 4)
    if len(header) != 8 + count * _ENTRY.size:
        raise PackFormatError(f"pack {pack_id[:12]}: header length mismatch")
    entries = [e for e in _ENTRY.iter_unpack(header[8:])]
    return _entries_with_offsets(pack_id, entries)


def read_pack_entries(cipher: Cipher, pack_id: str, data: bytes) -> list[BlobEntry]:
    """Entries of a whole pack held in memory; checks the header covers the blobs exactly."""
    if len(data) < _TRAILER.size:
        raise PackFormatError(f"pack {pack_id[:12]}: truncated")
    hlen = header_length(data[-_TRAILER.size:])
    start = len(data) - _TRAILER.size - hlen
    if start < 0:
        raise PackFormatError(f"pack {pack_id[:12]}: header length out of range")
    entries = parse_header(cipher, pack_id, data[start : len(data) - _TRAILER.size])
    covered = sum(e.length for e in entries)
    if covered != start:
        raise PackFormatError(f"pack {pack_id[:12]}: blobs do not fill the pack")
    return entries


def trailer_size() -> int:
    return _TRAILER.size
