"""Entry names compared as bytes, and the limits a tree is measured against before a walk."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vault.repository.blob import BlobType
from vault.repository.saver import BlobSaver
from vault.repository.tree import (
    Node,
    TreeLimitExceeded,
    TreeTooLarge,
    decode_tree,
    encode_tree,
    name_bytes,
    same_name,
)
from vault.repository.tree_limits import TreeSize, check_tree_limits


@pytest.mark.parametrize("name, raw", [
    ("\u00e9", b"\xc3\xa9"), ("\udcc3\udca9", b"\xc3\xa9"),  # one name, two spellings
    ("\U0001f600", b"\xf0\x9f\x98\x80"), ("..x", b"..x"), ("\udcff", b"\xff"),
    ("", None), (".", None), ("..", None), ("a/b", None), ("nul\x00", None),
    ("\udc2e\udc2e", None),  # would be "..", but surrogateescape stands only for 0x80-0xff
    ("\udc2f", None), ("\ud83d", None),  # a lone high surrogate stands for no byte at all
    (None, None), (3, None),
])
def test_a_name_is_its_bytes_or_refused(name: object, raw: bytes | None) -> None:
    assert name_bytes(name) == raw


def test_names_are_the_same_when_their_bytes_are() -> None:
    assert same_name("\u00e9", "\udcc3\udca9")
    assert not same_name("\u00e9", "e")


def test_a_tree_with_too_many_entries_is_refused_when_decoded() -> None:
    doc = {"nodes": [{"name": f"f{i}", "type": "file", "mode": 0, "mtime_ns": 0}
                     for i in range(4)]}
    data = json.dumps(doc).encode()
    assert len(decode_tree(data, max_entries=4)) == 4
    with pytest.raises(TreeTooLarge, match="4 entries, more than the 3 one tree may hold"):
        decode_tree(data, max_entries=3)


def _dir(saver: BlobSaver, name: str, children: list[Node]) -> Node:
    tree, _new = saver.save(BlobType.TREE, encode_tree(children))
    return Node(name=name, type="dir", mode=0o40755, mtime_ns=0, subtree=tree)


def _file(name: str) -> Node:
    return Node(name=name, type="file", mode=0o100644, mtime_ns=0)


def test_a_shared_subtree_counts_each_time_it_is_met(unlocked_repo: Any) -> None:
    saver = BlobSaver(unlocked_repo)
    leaf = _dir(saver, "x", [_file("a"), _file("b"), _file("c")])
    middle = _dir(saver, "m", [Node(**{**_slots(leaf), "name": f"x{i}"}) for i in range(4)])
    root, _new = saver.save(BlobType.TREE, encode_tree([middle, _file("top")]))
    saver.flush()
    unlocked_repo.load_index()
    # root: m + top; m: 4 dirs; each dir: 3 files
    assert check_tree_limits(unlocked_repo, root) == TreeSize(entries=2 + 4 + 12, depth=3)
    assert check_tree_limits(unlocked_repo, root, max_entries=18).entries == 18
    with pytest.raises(TreeLimitExceeded, match="more than 17 entries below it"):
        check_tree_limits(unlocked_repo, root, max_entries=17)
    assert check_tree_limits(unlocked_repo, root, max_depth=3).depth == 3
    with pytest.raises(TreeLimitExceeded, match="nested deeper than 2 levels"):
        check_tree_limits(unlocked_repo, root, max_depth=2)


def _slots(node: Node) -> dict[str, Any]:
    return {name: getattr(node, name) for name in Node.__slots__}
