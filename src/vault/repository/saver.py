"""Saving blobs: dedup check, compression, encryption, packing and index writes.

Thread-safe. Each worker thread fills its own pack (no lock while compressing and
sealing, which release the GIL); only the dedup check and the bookkeeping take a lock.
Packs are saved as they fill up; an index file naming them is written every
`index_every` packs and on `flush()`, so a killed backup loses at most those packs' index
entries, and `Repository.recover_unindexed_packs` gets even those back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from vault.foundation.failpoints import reached
from vault.repository.blob import FLAG_COMPRESSED, BlobEntry, BlobType
from vault.repository.compress import compress
from vault.repository.pack import PackBuilder
from vault.repository.repository import Repository


@dataclass
class SaveStats:
    blobs_new: int = 0
    bytes_new: int = 0  # plaintext bytes of new blobs
    bytes_stored: int = 0  # bytes written to packs (sealed, compressed)
    packs_written: int = 0


class PackBudget(Protocol):
    """Admits each pack before it is written (vault.planning.quota.QuotaGuard: the hard quota);
    raising stops the backup with nothing of that pack written."""

    def admit(self, pack_bytes: int, blobs: int) -> None: ...


class BlobSaver:
    def __init__(self, repo: Repository, *, compression_level: int = 3,
                 pack_size: int = 16 << 20, index_every: int = 16,
                 dry_run: bool = False, budget: PackBudget | None = None) -> None:
        self.repo = repo
        self.index = repo.load_index()
        self.compression_level = compression_level
        self.pack_size = pack_size
        self.index_every = index_every
        self.dry_run = dry_run  # count what would be stored, write nothing
        self.budget = budget
        self.stats = SaveStats()
        self._lock = threading.Lock()
        self._pending: set[bytes] = set()  # in a pack being built or not yet indexed
        self._unindexed: dict[str, tuple[int, list[BlobEntry]]] = {}
        self._local = threading.local()
        self._builders: list[PackBuilder] = []
        self._pinned = repo.pinned_blobs

    def _builder(self) -> PackBuilder:
        builder: PackBuilder | None = getattr(self._local, "builder", None)
        if builder is None:
            builder = self._local.builder = PackBuilder(self.repo.cipher)
            with self._lock:
                self._builders.append(builder)
        return builder

    def known(self, blob_id: bytes) -> bool:
        """Whether the blob is stored already; a known blob is pinned (the caller will
        reference it instead of saving it)."""
        with self._lock:
            found = blob_id in self.index or blob_id in self._pending
            if found:
                self._pinned.add(blob_id)
        return found

    def save(self, blob_type: BlobType, data: bytes | memoryview,
             blob_id: bytes | None = None) -> tuple[bytes, bool]:
        """Store `data` unless the repository has it already. Returns (id, was it new)."""
        if blob_id is None:
            blob_id = self.repo.cipher.blob_id(data)
        with self._lock:
            # Every blob a snapshot will name is pinned, new or not: a prune running
            # meanwhile may condemn the pack holding it (see repository/condemned.py).
            self._pinned.add(blob_id)
            if blob_id in self.index or blob_id in self._pending:
                return blob_id, False
            self._pending.add(blob_id)
        payload, compressed = compress(data, self.compression_level)
        sealed = self.repo.cipher.seal(payload, blob_id)
        if self.dry_run:
            with self._lock:
                self.stats.blobs_new += 1
                self.stats.bytes_new += len(data)
                self.stats.bytes_stored += len(sealed)
            return blob_id, True
        builder = self._builder()
        builder.add(blob_id, blob_type, sealed, len(data),
                    FLAG_COMPRESSED if compressed else 0)
        with self._lock:
            self.stats.blobs_new += 1
            self.stats.bytes_new += len(data)
            self.stats.bytes_stored += len(sealed)
        if builder.size >= self.pack_size:
            self._write_pack(builder)
        return blob_id, True

    def _write_pack(self, builder: PackBuilder) -> None:
        if not len(builder):
            return
        pack_id, data, entries = builder.finish()
        if self.budget is not None:
            self.budget.admit(len(data), len(entries))
        self.repo.storage.save("data", pack_id, data)
        reached("saver", "pack-written")  # a kill here leaves a pack no index names
        with self._lock:
            self._unindexed[pack_id] = (len(data), entries)
            self.stats.packs_written += 1
            due = len(self._unindexed) >= self.index_every
        if due:
            self._write_index()

    def _write_index(self) -> None:
        with self._lock:
            packs, self._unindexed = self._unindexed, {}
        if not packs:
            return
        self.repo.write_index(packs)
        reached("saver", "index-written")
        with self._lock:
            for _size, entries in packs.values():
                for e in entries:
                    self._pending.discard(e.blob_id)

    def index_written(self) -> None:
        """Index the packs written so far (a stopped backup's are reused by the next)."""
        self._write_index()

    def flush(self) -> None:
        """Write every partly filled pack and index everything written so far.

        Call only when no thread is saving any more (the end of a backup).
        """
        with self._lock:
            builders = list(self._builders)
        for builder in builders:
            self._write_pack(builder)
        self._write_index()
