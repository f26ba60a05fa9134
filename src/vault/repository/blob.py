"""Blob kinds and index entries shared by packs and the index."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class BlobType(IntEnum):
    DATA = 0
    TREE = 1


FLAG_COMPRESSED = 1


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """Where a blob lives: its pack, byte range in the pack, and how to read it back."""

    blob_id: bytes
    blob_type: BlobType
    pack_id: str
    offset: int
    length: int  # stored (sealed) length in the pack
    raw_length: int  # plaintext length after decompression
    flags: int

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_COMPRESSED)
