"""Repairing snapshots that still rely on blobs no pack holds any more.

A repaired snapshot is a new snapshot beside the original (same time, host and paths,
tag `repaired`, `repaired_from` = the original's id) whose trees leave the loss out:

- a file of a files snapshot whose content lost a blob is truncated to its readable
  prefix (the blobs before the first lost one) and listed in `repair.truncated` with both
  sizes; a file left with nothing readable is dropped (`repair.dropped`);
- a file of a database or settings snapshot is dropped whole (a truncated database file
  is not a database);
- a directory whose tree is lost becomes empty (`repair.dirs_lost`).

The original is forgotten only when asked (`vault repair snapshots --forget`). A rerun
skips every original that already has a repaired snapshot, so a kill never makes two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vault.errors import VaultError
from vault.repository.blob import BlobType
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node, encode_tree

REPAIRED_TAG = "repaired"


@dataclass
class TreeRepair:
    truncated: list[dict[str, Any]] = field(default_factory=list)  # path, size, kept
    dropped: list[str] = field(default_factory=list)
    dirs_lost: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.truncated or self.dropped or self.dirs_lost)

    def as_doc(self) -> dict[str, Any]:
        return {"truncated": self.truncated, "dropped": self.dropped,
                "dirs_lost": self.dirs_lost}


def needs_repair(repo: Repository, snapshot: Snapshot) -> bool:
    """Whether some tree or content blob of `snapshot` is in no index."""
    index, seen = repo.index, set()

    def broken(tree_id: bytes) -> bool:
        if tree_id in seen:
            return False
        seen.add(tree_id)
        if tree_id not in index:
            return True
        try:
            nodes = repo.load_tree(tree_id)
        except VaultError:
            return True
        return any(any(b not in index for b in node.content)
                   or (node.subtree is not None and broken(node.subtree)) for node in nodes)

    return broken(bytes.fromhex(snapshot.tree))


class SnapshotRepairer:
    """Rewrites the trees of damaged snapshots through one BlobSaver."""

    def __init__(self, repo: Repository, saver: BlobSaver) -> None:
        self.repo = repo
        self.saver = saver

    def repair_tree(self, tree_id: bytes, prefix: str, whole_files: bool,
                    found: TreeRepair) -> bytes:
        """The id of `tree_id`'s repaired copy (itself when nothing under it is lost)."""
        try:
            nodes = self.repo.load_tree(tree_id)
        except VaultError:
            found.dirs_lost.append(prefix or "/")
            return self.saver.save(BlobType.TREE, encode_tree([]))[0]
        kept: list[Node] = []
        for node in nodes:
            path = f"{prefix}/{node.name}"
            if node.type == "file" and not self._repair_file(node, path, whole_files, found):
                continue
            if node.subtree is not None:
                node.subtree = self.repair_tree(node.subtree, path, whole_files, found)
            kept.append(node)
        return self.saver.save(BlobType.TREE, encode_tree(kept))[0]

    def _repair_file(self, node: Node, path: str, whole_files: bool,
                     found: TreeRepair) -> bool:
        """Truncate `node` to its readable prefix; False when it is to be dropped."""
        index = self.repo.index
        lost_at = next((i for i, b in enumerate(node.content) if b not in index), None)
        if lost_at is None:
            return True
        if whole_files or lost_at == 0:
            found.dropped.append(path)
            return False
        node.content = node.content[:lost_at]
        kept_size = 0
        for blob_id in node.content:
            entry = index.get(blob_id)
            assert entry is not None
            kept_size += entry.raw_length
        found.truncated.append({"path": path, "size": node.size, "kept": kept_size})
        node.size = kept_size
        return True


def repaired_copy(snapshot: Snapshot, tree_id: bytes, found: TreeRepair) -> Snapshot:
    copy = snapshot.model_copy(deep=True)
    copy.id = ""
    copy.tree = tree_id.hex()
    copy.tags = sorted({*snapshot.tags, REPAIRED_TAG})
    copy.repaired_from = snapshot.id
    copy.repair = found.as_doc()
    return copy


def already_repaired(snapshots: list[Snapshot]) -> set[str]:
    """Originals that some snapshot was repaired from."""
    return {s.repaired_from for s in snapshots if s.repaired_from}
