"""Tree objects: one per directory, listing its entries sorted by name.

A tree is stored as a blob whose id is the keyed hash of its JSON encoding, so an
unchanged directory is the same blob in every snapshot and costs nothing to store again.
Names are file-system bytes decoded with `surrogateescape`; JSON's \\udcXX escapes carry
undecodable bytes through unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

NodeType = Literal["file", "dir", "symlink"]


class InvalidTree(Exception):
    """A tree blob does not parse, or holds a name that could escape a restore target."""


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


def is_safe_name(name: object) -> bool:
    """A single path component that cannot climb out of the directory holding it."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\x00" not in name
    )


def encode_tree(nodes: list[Node]) -> bytes:
    nodes = sorted(nodes, key=lambda n: n.name)
    return json.dumps({"nodes": [n.to_json() for n in nodes]}, separators=(",", ":")).encode()


def decode_tree(data: bytes) -> list[Node]:
    try:
        doc = json.loads(data)
        nodes = [Node.from_json(n) for n in doc["nodes"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidTree(str(exc)) from exc
    return nodes
