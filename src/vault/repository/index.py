"""The index: which pack holds each blob, at which offset.

Index files are sealed, zstd-compressed binary tables, one record per blob grouped by
pack. A backup writes its packs first, then an index file naming them, then the snapshot:
whatever a snapshot references is durable before the snapshot exists.

In memory the index is a dict from blob id to a compact tuple; packs are numbered so
tuples hold a small int rather than a 64-character pack name.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import zstandard

from vault.repository.blob import BlobEntry, BlobType
from vault.repository.crypto import Cipher
from vault.repository.damage import Damage

_MAGIC = b"VIX1"
_AAD = b"vault-index-v1"
_PACK = struct.Struct("<32sIQ")  # pack id (raw sha256), blob count, pack size
_BLOB = struct.Struct("<BB32sQII")  # type, flags, id, offset, length, raw length


class IndexFormatError(Exception):
    """An index file does not decrypt or parse."""


def encode_index(cipher: Cipher, packs: dict[str, tuple[int, list[BlobEntry]]]) -> bytes:
    """Seal an index file for `packs`: pack id -> (pack size, entries)."""
    out = bytearray(_MAGIC)
    out += struct.pack("<I", len(packs))
    for pack_id, (size, entries) in packs.items():
        out += _PACK.pack(bytes.fromhex(pack_id), len(entries), size)
        for e in entries:
            out += _BLOB.pack(int(e.blob_type), e.flags, e.blob_id, e.offset, e.length,
                              e.raw_length)
    return cipher.seal(zstandard.ZstdCompressor(level=3).compress(bytes(out)), _AAD)


def decode_index(cipher: Cipher, sealed: bytes) -> Iterator[tuple[str, int, list[BlobEntry]]]:
    """Yield (pack id, pack size, entries) for each pack an index file lists."""
    try:
        raw = zstandard.ZstdDecompressor().decompress(cipher.open(sealed, _AAD))
    except Exception as exc:
        raise IndexFormatError(str(exc)) from exc
    if raw[:4] != _MAGIC:
        raise IndexFormatError("bad magic")
    (npacks,) = struct.unpack_from("<I", raw, 4)
    pos = 8
    for _ in range(npacks):
        pid, count, size = _PACK.unpack_from(raw, pos)
        pos += _PACK.size
        pack_id = pid.hex()
        entries = []
        for t, flags, bid, off, length, raw_len in _BLOB.iter_unpack(
            raw[pos : pos + count * _BLOB.size]
        ):
            entries.append(BlobEntry(bid, BlobType(t), pack_id, off, length, raw_len, flags))
        pos += count * _BLOB.size
        yield pack_id, size, entries


class MasterIndex:
    """All blobs the repository knows, merged from every index file.

    Copies that a damage record names are left out (damage.py): a blob whose only copy is
    bad is then simply not here, so a backup stores it again and nothing reads it.
    """

    def __init__(self, damage: Damage | None = None) -> None:
        self._blobs: dict[bytes, tuple[int, int, int, int, int, int]] = {}
        self._pack_ids: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self.pack_sizes: dict[str, int] = {}
        self.index_files: set[str] = set()
        self.damage = damage or Damage()

    def add_pack(self, pack_id: str, size: int, entries: Iterable[BlobEntry]) -> None:
        number = self._pack_numbers.get(pack_id)
        if number is None:
            number = self._pack_numbers[pack_id] = len(self._pack_ids)
            self._pack_ids.append(pack_id)
        self.pack_sizes[pack_id] = size
        blobs = self._blobs
        damage = self.damage
        check = bool(damage.bad_copies or damage.bad_packs)
        for e in entries:
            if check and damage.is_bad_copy(e.blob_id, pack_id):
                continue
            # First writer wins: a duplicate copy in another pack is simply unused.
            if e.blob_id not in blobs:
                blobs[e.blob_id] = (number, int(e.blob_type), e.offset, e.length,
                                    e.raw_length, e.flags)

    def drop_bad_copies(self, damage: Damage) -> None:
        """Forget the copies `damage` names (found in this session, after loading)."""
        for blob_id, (number, *_rest) in list(self._blobs.items()):
            if damage.is_bad_copy(blob_id, self._pack_ids[number]):
                del self._blobs[blob_id]

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self._blobs

    def __len__(self) -> int:
        return len(self._blobs)

    def get(self, blob_id: bytes) -> BlobEntry | None:
        rec = self._blobs.get(blob_id)
        if rec is None:
            return None
        number, t, offset, length, raw_length, flags = rec
        return BlobEntry(blob_id, BlobType(t), self._pack_ids[number], offset, length,
                         raw_length, flags)

    def has_pack(self, pack_id: str) -> bool:
        return pack_id in self.pack_sizes

    def packs(self) -> list[str]:
        return list(self.pack_sizes)

    def entries(self) -> Iterator[BlobEntry]:
        for blob_id in self._blobs:
            entry = self.get(blob_id)
            assert entry is not None
            yield entry
