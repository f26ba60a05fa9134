"""zstd compression of chunk data; incompressible data is stored raw.

A chunk is kept compressed only when that saves at least 1/32 of its size: media, archives
and encrypted data cost a decompression on every restore for nothing otherwise.
"""

from __future__ import annotations

import threading

import zstandard

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # ZstdCompressor objects are not thread-safe; keep one per thread and level.
    cache: dict[int, zstandard.ZstdCompressor] = getattr(_local, "compressors", {})
    if not cache:
        _local.compressors = cache
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


def compress(data: bytes | memoryview, level: int) -> tuple[bytes | memoryview, bool]:
    """(payload, compressed?): the smaller representation worth storing."""
    if level <= 0 or len(data) < 64:
        return data, False
    packed = _compressor(level).compress(data)
    if len(packed) + (len(data) >> 5) < len(data):
        return packed, True
    return data, False


def decompress(data: bytes, raw_length: int) -> bytes:
    return bytes(_decompressor().decompress(data, max_output_size=raw_length))
