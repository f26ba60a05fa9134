"""A snapshot's files read back as a source's items (`vault.sources.base.StoredItems`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from vault.errors import UsageError
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node
from vault.repository.tree_limits import check_tree_limits
from vault.sources.base import stream_of


class SnapshotItems:
    """Every file of a source snapshot by its item path; contents stream blob by blob."""

    def __init__(self, repo: Repository, snapshot: Snapshot) -> None:
        self.repo = repo
        self.snapshot = snapshot
        meta = snapshot.source.get("meta")
        self.meta: dict[str, Any] = dict(meta) if isinstance(meta, dict) else {}
        self._files: dict[str, Node] = {}
        check_tree_limits(repo, bytes.fromhex(snapshot.tree))  # refused, not walked
        self._walk(bytes.fromhex(snapshot.tree), "")

    def _walk(self, tree: bytes, prefix: str) -> None:
        for node in self.repo.load_tree(tree):
            path = f"{prefix}{node.name}"
            if node.type == "dir" and node.subtree is not None:
                self._walk(node.subtree, path + "/")
            elif node.type == "file":
                self._files[path] = node

    def paths(self) -> list[str]:
        return sorted(self._files)

    def size(self, path: str) -> int:
        return self._node(path).size

    @contextmanager
    def open(self, path: str) -> Iterator[BinaryIO]:
        node = self._node(path)
        blobs = list(node.content)
        with stream_of(lambda: (self.repo.load_blob(blob) for blob in blobs))() as stream:
            yield stream

    def _node(self, path: str) -> Node:
        try:
            return self._files[path]
        except KeyError:
            raise UsageError(f"snapshot {self.snapshot.short_id} has no item {path!r}") from None
