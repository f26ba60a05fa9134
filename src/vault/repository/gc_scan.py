"""Finding what the snapshots use, for garbage collection (`gc.py`).

Trees are read through a `BlobLookup` that falls back to condemned packs: a snapshot
committed next to a prune may name blobs only a condemned pack still holds, and those
packs are exactly the ones to rescue.
"""

from __future__ import annotations

from vault.errors import IntegrityError, ObjectNotFound
from vault.foundation.progress import ProgressCounter
from vault.repository.blob import BlobEntry
from vault.repository.index import IndexFormatError, MasterIndex, decode_index
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import InvalidTree, Node, decode_tree


class BlobLookup:
    """Where a blob is: the index first, then (read lazily) the condemned packs' headers."""

    def __init__(self, repo: Repository, index: MasterIndex, condemned: set[str]) -> None:
        self.repo, self.index, self.condemned = repo, index, condemned
        self._condemned_entries: dict[bytes, BlobEntry] | None = None

    def in_condemned(self, blob_id: bytes) -> BlobEntry | None:
        if self._condemned_entries is None:
            self._condemned_entries = {}
            for pack_id in sorted(self.condemned):
                try:
                    _size, entries = self.repo.read_pack_header(pack_id)
                except (ObjectNotFound, IntegrityError):
                    continue  # deleted already, or unreadable: it cannot help anyone
                for entry in entries:
                    self._condemned_entries.setdefault(entry.blob_id, entry)
        return self._condemned_entries.get(blob_id)

    def find(self, blob_id: bytes) -> BlobEntry | None:
        return self.index.get(blob_id) or self.in_condemned(blob_id)


class UsageScanner:
    """The blobs every snapshot uses; trees already walked are not walked again."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.used: set[bytes] = set()
        self.seen_snapshots: set[str] = set()

    def scan(self, snapshots: list[Snapshot], lookup: BlobLookup,
             progress: ProgressCounter) -> None:
        todo = [s for s in snapshots if s.id not in self.seen_snapshots]
        progress.set_totals(None, len(todo))
        for snap in todo:
            self._walk(bytes.fromhex(snap.tree), lookup)
            self.seen_snapshots.add(snap.id)
            progress.add(0, 1, current=snap.short_id)
        progress.finish()

    def _walk(self, tree_id: bytes, lookup: BlobLookup) -> None:
        stack = [tree_id]
        while stack:
            tid = stack.pop()
            if tid in self.used:
                continue
            self.used.add(tid)
            for node in self._load_tree(tid, lookup):
                self.used.update(node.content)
                if node.subtree is not None:
                    stack.append(node.subtree)

    def _load_tree(self, tree_id: bytes, lookup: BlobLookup) -> list[Node]:
        entry = lookup.find(tree_id)
        where = f"tree {tree_id.hex()[:12]}"
        if entry is None:
            raise IntegrityError(what=where, repo=self.repo.location,
                                 detail="not in any index; run `vault verify`")
        try:
            return decode_tree(self.repo.read_blob(entry))
        except (ObjectNotFound, InvalidTree) as exc:
            raise IntegrityError(what=where, repo=self.repo.location, detail=str(exc)) from exc

    def needs_rescue(self, lookup: BlobLookup) -> set[str]:
        """Condemned packs holding a used blob that the index no longer names."""
        packs = set()
        for blob_id in self.used:
            if blob_id in lookup.index:
                continue
            entry = lookup.in_condemned(blob_id)
            if entry is None:
                raise IntegrityError(what=f"blob {blob_id.hex()[:12]}",
                                     repo=self.repo.location, detail=self._lost(blob_id))
            packs.add(entry.pack_id)
        return packs


    def _lost(self, blob_id: bytes) -> str:
        """Why prune stops at a used blob no healthy copy holds. A damaged copy may still
        be partly readable: prune never deletes it, `vault repair packs` salvages it."""
        damage = self.repo.damage
        reason = damage.reason(blob_id)
        if reason is None and damage.bad_packs:  # a whole pack's blobs are left out
            reason = f"the damage records name {len(damage.bad_packs)} pack(s) gone or unreadable"
        if reason is None:
            return "used by a snapshot but in no pack; run `vault verify`"
        return (f"used by a snapshot, and its only copy is damaged ({reason}); prune "
                "stops here: run `vault repair packs`, then `vault repair snapshots`")


def load_fresh_index(repo: Repository) -> MasterIndex:
    """The index as the index files stored right now describe it."""
    index = MasterIndex()
    for info in repo.storage.list("index"):
        try:
            for pack_id, size, entries in decode_index(repo.cipher,
                                                       repo.storage.load("index", info.name)):
                index.add_pack(pack_id, size, entries)
        except ObjectNotFound:
            continue  # removed meanwhile (by prune's own switch): its packs are elsewhere
        except IndexFormatError as exc:
            raise IntegrityError(what=f"index {info.name[:12]}", repo=repo.location,
                                 detail=str(exc)) from exc
        index.index_files.add(info.name)
    return index


def load_all_snapshots(repo: Repository) -> list[Snapshot]:
    """Every snapshot; a damaged one stops prune (what it references is unknown)."""
    snapshots, damaged = repo.load_snapshots()
    if damaged:
        first = next(iter(damaged.values()))
        raise IntegrityError(what="snapshots", repo=repo.location,
                             detail=f"{len(damaged)} damaged ({first.message}); prune "
                                    "cannot know what they use — run `vault verify`")
    return snapshots
