"""A path inside a snapshot: `ID:sub/dir` references and the tree found at a path."""

from __future__ import annotations

from vault.errors import SnapshotNotFound
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import same_name


def split_ref(ref: str) -> tuple[str, str]:
    """"abc123:srv/app" -> ("abc123", "/srv/app"); "latest" -> ("latest", "/")."""
    snap, _, sub = ref.partition(":")
    return snap, "/" + sub.strip("/")


def resolve_subtree(repo: Repository, snapshot: Snapshot, path: str) -> bytes:
    """The tree id at `path` inside a snapshot."""
    tree = bytes.fromhex(snapshot.tree)
    for part in [p for p in path.split("/") if p]:
        match = [n for n in repo.load_tree(tree) if same_name(n.name, part)]
        if not match or match[0].type != "dir" or match[0].subtree is None:
            raise SnapshotNotFound(ref=f"{snapshot.short_id}:{path}", repo=repo.location)
        tree = match[0].subtree
    return tree
