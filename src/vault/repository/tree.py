"""Tree objects: one per directory, listing its entries sorted by name.

A tree is stored as a blob whose id is the keyed hash of its JSON encoding, so an
unchanged directory is the same blob in every snapshot and costs nothing to store again.
Names are file-system bytes decoded with `surrogateescape`; JSON's \\udcXX escapes carry
undecodable bytes through unchanged. Two different strings can stand for the same bytes
('\u00e9' and '\\udcc3\\udca9' are both b"\\xc3\\xa9"), so whatever decides that two entries are
"the same name" compares `name_bytes`, never the strings.

Limits against hostile snapshots (docs/format.md#limits): a tree of more than
`MAX_TREE_ENTRIES` entries is refused when it is decoded; depth and total entries are
checked by `vault.repository.tree_limits` before a tree is walked.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from vault.errors import RepositoryError

NodeType = Literal["file", "dir", "symlink"]

#: entries one tree (one directory) may hold. Far above any real directory (ext4 without
#: `large_dir` stops near 10 million), yet a bound on what one hostile tree multiplies.
MAX_TREE_ENTRIES = 10_000_000
#: levels of directories below a snapshot's root. A backup cannot record more: it reads
#: every path whole (PATH_MAX, 4096 bytes) and its walk recurses twice per level, so it
#: stops near 490; restores and `vault ls -R` recurse once per level.
MAX_TREE_DEPTH = 512
#: entries below one root, counted as a walk meets them (a tree referenced twice counts
#: twice): 1000 trees of 1000 entries each pointing at the next are 1000**3 entries to
#: walk but a few kilobytes to store. Far above any file system vault is meant for.
MAX_SNAPSHOT_ENTRIES = 100_000_000


class InvalidTree(Exception):
    """A tree blob does not parse, or holds a name that could escape a restore target."""


class TreeTooLarge(InvalidTree):
    """A tree holds more than `MAX_TREE_ENTRIES` entries."""


class TreeLimitExceeded(RepositoryError):
    """refused tree {tree}: {detail} (a limit against hostile snapshots, docs/format.md)"""


@dataclass(slots=True)
class Node:
    name: str
    type: NodeType
    mode: int
    mtime_ns: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    content: list[bytes] = field(default_factory=list)  # data blob ids, in file order
    subtree: bytes | None = None
    link_target: str | None = None
    # Hard links: files sharing (dev, inode) within one snapshot are restored as links.
    hardlink_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name, "type": self.type, "mode": self.mode,
            "mtime_ns": self.mtime_ns, "uid": self.uid, "gid": self.gid,
        }
        if self.type == "file":
            doc["size"] = self.size
            doc["content"] = [c.hex() for c in self.content]
            if self.hardlink_key:
                doc["hardlink"] = self.hardlink_key
        elif self.type == "dir":
            doc["subtree"] = self.subtree.hex() if self.subtree else None
        else:
            doc["link_target"] = self.link_target
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Node:
        # Unsafe names are kept here and refused one by one where it matters (restore),
        # so one hostile entry does not hide the rest of a snapshot.
        name = str(doc["name"])
        node_type = doc["type"]
        if node_type not in ("file", "dir", "symlink"):
            raise InvalidTree(f"unknown node type {node_type!r}")
        subtree = doc.get("subtree")
        return cls(
            name=name, type=node_type, mode=int(doc["mode"]), mtime_ns=int(doc["mtime_ns"]),
            uid=int(doc.get("uid", 0)), gid=int(doc.get("gid", 0)),
            size=int(doc.get("size", 0)),
            content=[bytes.fromhex(c) for c in doc.get("content", [])],
            subtree=bytes.fromhex(subtree) if subtree else None,
            link_target=doc.get("link_target"),
            hardlink_key=doc.get("hardlink"),
        )


def name_bytes(name: object) -> bytes | None:
    """The file-system bytes of an entry name; None unless they are one path component
    that cannot climb out of the directory holding it (not empty, `.` or `..`, no `/`,
    no NUL, no surrogate that stands for no byte)."""
    if not isinstance(name, str):
        return None
    try:
        raw = os.fsencode(name)
    except UnicodeError:
        return None
    if raw in (b"", b".", b"..") or b"/" in raw or b"\x00" in raw:
        return None
    return raw


def is_safe_name(name: object) -> bool:
    """A single path component that cannot climb out of the directory holding it."""
    return name_bytes(name) is not None


def same_name(a: str, b: str) -> bool:
    """Whether two entry names are the same file-system bytes."""
    try:
        return os.fsencode(a) == os.fsencode(b)
    except UnicodeError:
        return a == b


def encode_tree(nodes: list[Node]) -> bytes:
    nodes = sorted(nodes, key=lambda n: n.name)
    return json.dumps({"nodes": [n.to_json() for n in nodes]}, separators=(",", ":")).encode()


def decode_tree(data: bytes, max_entries: int = MAX_TREE_ENTRIES) -> list[Node]:
    try:
        doc = json.loads(data)
        listed = doc["nodes"]
        if len(listed) > max_entries:
            raise TreeTooLarge(f"{len(listed)} entries, more than the {max_entries} "
                               f"one tree may hold")
        nodes = [Node.from_json(n) for n in listed]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidTree(str(exc)) from exc
    return nodes
