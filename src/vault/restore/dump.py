"""Streaming one file of a snapshot, chunk by chunk, to a binary stream."""

from __future__ import annotations

from typing import BinaryIO

from vault.errors import UsageError
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node, same_name


def find_node(repo: Repository, snapshot: Snapshot, path: str) -> Node:
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise UsageError("give the path of a file inside the snapshot")
    tree: bytes | None = bytes.fromhex(snapshot.tree)
    node: Node | None = None
    for part in parts:
        if tree is None:
            break
        node = next((n for n in repo.load_tree(tree) if same_name(n.name, part)), None)
        if node is None:
            break
        tree = node.subtree
    if node is None or not same_name(node.name, parts[-1]):
        raise UsageError(f"{path}: no such file in snapshot {snapshot.short_id}")
    return node


def dump_file(repo: Repository, snapshot: Snapshot, path: str, out: BinaryIO) -> int:
    node = find_node(repo, snapshot, path)
    if node.type != "file":
        raise UsageError(f"{path}: is a {node.type}, not a file")
    written = 0
    for blob_id in node.content:
        data = repo.load_blob(blob_id)
        out.write(data)
        written += len(data)
    out.flush()
    return written
