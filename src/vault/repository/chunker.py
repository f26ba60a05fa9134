"""Content-defined chunking (FastCDC 2020, C-accelerated through pyfastcdc).

Boundaries depend on content, so an insert shifts only the chunks around it and the rest
deduplicate. pyfastcdc releases the GIL while cutting, so several files chunk in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pyfastcdc import FastCDC


@dataclass(frozen=True)
class ChunkerParams:
    avg_size: int = 1 << 20
    min_size: int = 1 << 18
    max_size: int = 1 << 22

    @classmethod
    def for_average(cls, avg_size: int) -> ChunkerParams:
        return cls(avg_size=avg_size, min_size=avg_size // 4, max_size=avg_size * 4)


class Chunker:
    """Cuts files and buffers into chunks. Not thread-safe: one per worker thread."""

    def __init__(self, params: ChunkerParams, seed: int) -> None:
        self.params = params
        self._cdc = FastCDC(
            avg_size=params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            seed=seed,
        )

    def cut_buffer(self, data: bytes | memoryview) -> Iterator[memoryview]:
        if len(data) <= self.params.min_size:
            yield memoryview(data)
            return
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data

    def cut_file_object(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Chunks of a readable binary stream (it needs `readinto`; a pipe will do).
        Each view is valid until the next chunk."""
        for chunk in self._cdc.cut_stream(stream):
            yield chunk.data

    def cut_file(self, path: str | bytes) -> Iterator[memoryview]:
        """Chunks of a file, read with readinto (not mmap: a file truncated while mapped
        would kill the process with SIGBUS). Each view is valid until the next chunk."""
        with open(path, "rb", buffering=0) as f:
            for chunk in self._cdc.cut_stream(f):
                yield chunk.data
