"""Helpers for source tests: what a capture would add to a repository that holds another."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from vault.repository.chunker import Chunker, ChunkerParams
from vault.sources.base import MemoryStoredItems

NewBytes = Callable[[MemoryStoredItems, MemoryStoredItems], int]


def chunk_digests(items: MemoryStoredItems, params: ChunkerParams | None = None,
                  seed: int = 0) -> dict[bytes, int]:
    """SHA-256 -> size of every chunk the engine would cut from the items (default params)."""
    chunker = Chunker(params or ChunkerParams(), seed)
    found: dict[bytes, int] = {}
    for path in items.paths():
        for chunk in chunker.cut_buffer(items.data[path]):
            found[hashlib.sha256(chunk).digest()] = len(chunk)
    return found


@pytest.fixture
def new_bytes() -> NewBytes:
    """new_bytes(previous, current): bytes of the chunks of `current` that `previous` lacks,
    i.e. what the repository engine would store anew for the second capture."""

    def measure(previous: MemoryStoredItems, current: MemoryStoredItems) -> int:
        known = chunk_digests(previous)
        return sum(size for digest, size in chunk_digests(current).items()
                   if digest not in known)

    return measure
