"""A restore never writes outside its target, whatever the snapshot or the target holds."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vault.repository.blob import BlobType
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node, encode_tree

MTIME = 1_650_000_000_000_000_000


def _file(saver: BlobSaver, name: str, data: bytes) -> Node:
    blob, _new = saver.save(BlobType.DATA, data)
    return Node(name=name, type="file", mode=0o100644, mtime_ns=MTIME, size=len(data),
                content=[blob])


def _dir(saver: BlobSaver, name: str, children: list[Node]) -> Node:
    tree, _new = saver.save(BlobType.TREE, encode_tree(children))
    return Node(name=name, type="dir", mode=0o40755, mtime_ns=MTIME, subtree=tree)


def _hostile_snapshot(repo, outside: Path) -> str:
    """A snapshot no backup would make: names that climb out, names with slashes, and a
    symlink to the outside followed by a directory of the same name (the classic
    "write through the link you just restored" attack)."""
    saver = BlobSaver(repo)
    link = Node(name="link", type="symlink", mode=0o120777, mtime_ns=MTIME,
                link_target=str(outside))
    nodes = [
        _file(saver, "../evil", b"climbed out"),
        _file(saver, "a/b", b"slash in a name"),
        _file(saver, "", b"empty name"),
        _file(saver, "nul\x00byte", b"nul in a name"),
        _dir(saver, "..", [_file(saver, "escaped.txt", b"one level up")]),
        _dir(saver, ".", [_file(saver, "dot.txt", b"same dir")]),
        link,
        _dir(saver, "link", [_file(saver, "pwned.txt", b"through the link")]),
        _file(saver, "safe.txt", b"safe"),
        _dir(saver, "ok", [_file(saver, "nested.txt", b"nested and safe")]),
    ]
    root, _new = saver.save(BlobType.TREE, encode_tree(nodes))
    saver.flush()
    snap = Snapshot(time=datetime.now(UTC), host=socket.gethostname(), user="test", uid=0,
                    paths=["/hostile"], tree=root.hex(), vault_version="test")
    return repo.save_snapshot(snap)


def _all_names(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*")}


def test_hostile_names_are_refused_and_the_rest_restored(vault_repo, open_repo,
                                                        tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    snapshot_id = _hostile_snapshot(open_repo(), outside)
    target = tmp_path / "work" / "target"
    before = _all_names(tmp_path) - {"target", "work"}

    result = vault_repo.json("restore", snapshot_id, "--target", target)
    assert result.code == 3, (result.last, result.stderr)

    assert list(outside.iterdir()) == []
    assert _all_names(tmp_path) - _all_names(target) - {"target", "work"} == before
    assert (target / "safe.txt").read_bytes() == b"safe"
    assert (target / "ok" / "nested.txt").read_bytes() == b"nested and safe"
    assert os.readlink(target / "link") == str(outside)  # a link is fine; following is not
    assert sorted(os.listdir(target)) == ["link", "ok", "safe.txt"]
    assert not {"escaped.txt", "dot.txt", "pwned.txt", "evil"} & _all_names(tmp_path)

    refused = [p["path"] for p in result.summary["problems"]]
    for name in ("/../evil", "/a/b", "/", "/nul\x00byte", "/..", "/.", "/link"):
        assert name in refused, refused
    assert all("refused" in p["error"] for p in result.summary["problems"])


def test_a_symlink_already_in_the_target_is_not_followed(vault_repo, fs,
                                                         tmp_path: Path) -> None:
    """target/sub -> elsewhere exists; the snapshot has a directory `sub` with files and
    subdirectories. Nothing may be created in, or changed about, `elsewhere`."""
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("file in sub")
    (src / "sub" / "deeper" / "g.txt").write_text("file in sub/deeper")
    (src / "sub" / "l").symlink_to("f.txt")
    (src / "top.txt").write_text("top")
    os.chmod(src / "sub", 0o751)
    os.utime(src / "sub", ns=(MTIME, MTIME))
    vault_repo.backup(src)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("do not touch")
    os.chmod(elsewhere, 0o700)
    before = fs.tree_meta(elsewhere)
    target = tmp_path / "target"
    target.mkdir()
    (target / "sub").symlink_to(elsewhere)

    result = vault_repo.json("restore", "--yes", f"latest:{src}", "--target", target)
    assert result.code == 3, (result.last, result.stderr)
    assert fs.tree_meta(elsewhere) == before
    assert (target / "top.txt").read_text() == "top"
    assert os.readlink(target / "sub") == str(elsewhere)
    assert str(target / "sub") in [p["path"] for p in result.summary["problems"]]


@pytest.mark.parametrize("policy", ["always", "never", "if-changed"])
def test_a_symlink_at_a_file_place_is_replaced_not_followed(vault_repo, tmp_path: Path,
                                                            policy: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "config").write_text("from the snapshot")
    vault_repo.backup(src)
    victim = tmp_path / "victim"
    victim.write_text("outside the target")
    target = tmp_path / "target"
    target.mkdir()
    (target / "config").symlink_to(victim)

    vault_repo.restore("--yes", f"latest:{src}", "--target", target, "--overwrite", policy)
    assert victim.read_text() == "outside the target"
    if policy == "never":
        assert (target / "config").is_symlink()
    else:
        assert not (target / "config").is_symlink()
        assert (target / "config").read_text() == "from the snapshot"
