"""Bounds on a tree before anything walks it: depth, total entries, no cycle.

Trees are content-addressed, so one small tree can be referenced any number of times: a
hostile snapshot of a few kilobytes can stand for 1000**3 entries (a "fan-out bomb") or
nest deeper than any walk should recurse. `check_tree_limits` measures a tree by loading
each distinct tree once and adding up what it stands for, so a bomb is refused after a
handful of loads instead of walked. Every command that walks a whole tree (restore and
its checks, `vault ls -R`, `vault diff`) calls it first; the limits are the constants in
`vault.repository.tree` (documented in docs/format.md#limits).

Trees that are missing or do not decode count as empty here: the restore's own check
(`missing_objects`) names them with a better message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vault.errors import IntegrityError
from vault.repository.tree import (
    MAX_SNAPSHOT_ENTRIES,
    MAX_TREE_DEPTH,
    Node,
    TreeLimitExceeded,
)


class TreeLoader(Protocol):
    def load_tree(self, tree_id: bytes) -> list[Node]: ...


@dataclass(frozen=True)
class TreeSize:
    entries: int  # every entry below the tree, a shared subtree counted each time it is met
    depth: int  # levels of trees, the tree itself included (an empty directory: 1)


class _Measure:
    def __init__(self, repo: TreeLoader, root: bytes, max_depth: int,
                 max_entries: int) -> None:
        self.repo = repo
        self.root = root.hex()[:12]
        self.max_depth = max_depth
        self.max_entries = max_entries
        self.sizes: dict[bytes, TreeSize] = {}
        self.open: set[bytes] = set()  # the trees on the current path (a cycle returns here)

    def refuse(self, detail: str) -> TreeLimitExceeded:
        return TreeLimitExceeded(tree=self.root, detail=detail)

    def size(self, tree_id: bytes, depth: int) -> TreeSize:
        known = self.sizes.get(tree_id)
        if known is not None:
            if depth - 1 + known.depth > self.max_depth:
                raise self.refuse(f"directories nested deeper than {self.max_depth} levels")
            return known
        if depth > self.max_depth:
            raise self.refuse(f"directories nested deeper than {self.max_depth} levels")
        if tree_id in self.open:
            raise self.refuse(f"tree {tree_id.hex()[:12]} contains itself (a cycle)")
        self.open.add(tree_id)
        try:
            nodes = self.repo.load_tree(tree_id)
        except IntegrityError:
            nodes = []
        entries, deepest = len(nodes), 0
        for node in nodes:
            if node.type == "dir" and node.subtree:
                below = self.size(node.subtree, depth + 1)
                entries += below.entries
                deepest = max(deepest, below.depth)
                if entries > self.max_entries:
                    raise self.refuse(f"more than {self.max_entries} entries below it")
        self.open.discard(tree_id)
        size = TreeSize(entries, deepest + 1)
        self.sizes[tree_id] = size
        return size


def check_tree_limits(repo: TreeLoader, root: bytes, *, max_depth: int = MAX_TREE_DEPTH,
                      max_entries: int = MAX_SNAPSHOT_ENTRIES) -> TreeSize:
    """What tree `root` stands for; raises `TreeLimitExceeded` past a limit or on a cycle."""
    return _Measure(repo, root, max_depth, max_entries).size(root, 1)
