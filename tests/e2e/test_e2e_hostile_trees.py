"""Hostile snapshots made with the repository's own key: names that are one file-system
name in two spellings, hard links whose first copy was taken over, fan-out bombs and
nesting too deep. Whatever they hold, nothing is written outside the target and the
command exits non-zero; a tree past a limit is refused before anything is written."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vault.repository.blob import BlobType
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import Snapshot
from vault.repository.tree import MAX_TREE_DEPTH, Node, encode_tree

MTIME = 1_650_000_000_000_000_000
E_ACUTE = "\u00e9"  # b"\xc3\xa9" ...
E_ACUTE_ESCAPED = "\udcc3\udca9"  # ... and the same two bytes, spelled as undecodable
EMOJI = "\U0001f600"


def _file(saver: BlobSaver, name: str, data: bytes, hardlink: str | None = None) -> Node:
    blob, _new = saver.save(BlobType.DATA, data)
    return Node(name=name, type="file", mode=0o100644, mtime_ns=MTIME, size=len(data),
                content=[blob], hardlink_key=hardlink)


def _link(name: str, target: Path) -> Node:
    return Node(name=name, type="symlink", mode=0o120777, mtime_ns=MTIME,
                link_target=str(target))


def _tree(saver: BlobSaver, children: list[Node]) -> bytes:
    tree, _new = saver.save(BlobType.TREE, encode_tree(children))
    return tree


def _dir(name: str, tree: bytes) -> Node:
    return Node(name=name, type="dir", mode=0o40755, mtime_ns=MTIME, subtree=tree)


def _snapshot(repo: Any, saver: BlobSaver, nodes: list[Node]) -> str:
    root = _tree(saver, nodes)
    saver.flush()
    snap = Snapshot(time=datetime.now(UTC), host=socket.gethostname(), user="test", uid=0,
                    paths=["/hostile"], tree=root.hex(), vault_version="test")
    return str(repo.save_snapshot(snap))


def _layout(kind: str, saver: BlobSaver, victim: Path) -> list[Node]:
    """The snapshot's root entries for one attack."""
    if kind == "file-then-link-then-hardlink":  # the case of the issue
        return [_file(saver, E_ACUTE, b"first copy", hardlink="1:7"),
                _link(E_ACUTE_ESCAPED, victim),
                _file(saver, EMOJI, b"first copy", hardlink="1:7")]
    if kind == "link-then-file":
        return [_link(E_ACUTE, victim), _file(saver, E_ACUTE_ESCAPED, b"through the link")]
    if kind == "link-then-dir":
        inner = _tree(saver, [_file(saver, "pwned.txt", b"through the link")])
        return [_link(E_ACUTE, victim.parent), _dir(E_ACUTE_ESCAPED, inner)]
    assert kind == "dir-then-link-then-hardlink-into-it"
    inner = _tree(saver, [_file(saver, "a.txt", b"first copy", hardlink="1:8")])
    return [_dir(E_ACUTE, inner), _link(E_ACUTE_ESCAPED, victim.parent),
            _file(saver, EMOJI, b"first copy", hardlink="1:8")]


def _state_outside(root: Path, target: Path) -> dict[str, tuple[bool, bytes]]:
    """Every path under `root` but not under `target` (nor the repository's and journal's
    own directories, which a restore does change): (is a symlink, content)."""
    found: dict[str, tuple[bool, bytes]] = {}
    own = (target, root / "repo", root / "home")
    for path in root.rglob("*"):
        if any(path == d or d in path.parents for d in own):
            continue
        link = path.is_symlink()
        data = path.read_bytes() if path.is_file() and not link else b""
        found[str(path)] = (link, data)
    return found


@pytest.mark.parametrize("kind", ["file-then-link-then-hardlink", "link-then-file",
                                  "link-then-dir", "dir-then-link-then-hardlink-into-it"])
def test_one_name_in_two_spellings_writes_nothing_outside_and_exits_3(
        vault_repo: Any, open_repo: Any, tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_bytes(b"precious")
    repo = open_repo()
    saver = BlobSaver(repo)
    snapshot_id = _snapshot(repo, saver, _layout(kind, saver, victim))
    target = tmp_path / "target"
    before = _state_outside(tmp_path, target)

    result = vault_repo.json("restore", snapshot_id, "--target", target)
    assert result.code == 3, (result.last, result.stderr)
    assert _state_outside(tmp_path, target) == before
    assert victim.read_bytes() == b"precious"
    assert sorted(os.listdir(outside)) == ["victim"]
    # the first spelling was restored; the second was refused, by its snapshot path
    assert os.listdir(target).count(E_ACUTE) == 1
    refused = {p["path"]: p["error"] for p in result.summary["problems"]}
    assert "repeats" in refused[f"/{E_ACUTE_ESCAPED}"], refused
    for path in target.rglob("*"):  # every restored file is one, in the target
        if not path.is_symlink() and path.is_file():
            assert os.path.realpath(path).startswith(str(target) + "/")


def test_the_hard_link_of_the_issue_is_a_link_to_the_first_copy(
        vault_repo: Any, open_repo: Any, tmp_path: Path) -> None:
    victim = tmp_path / "outside" / "victim"
    victim.parent.mkdir()
    victim.write_bytes(b"precious")
    repo = open_repo()
    saver = BlobSaver(repo)
    snapshot_id = _snapshot(repo, saver, _layout("file-then-link-then-hardlink", saver, victim))
    target = tmp_path / "target"

    result = vault_repo.json("restore", snapshot_id, "--target", target)
    assert result.code == 3, (result.last, result.stderr)
    first, second = target / E_ACUTE, target / EMOJI
    assert not first.is_symlink() and not second.is_symlink()
    assert first.read_bytes() == second.read_bytes() == b"first copy"
    assert os.stat(first).st_ino == os.stat(second).st_ino
    second.write_bytes(b"written through the restored name")
    assert victim.read_bytes() == b"precious"


def _fan_out_bomb(repo: Any, saver: BlobSaver) -> str:
    """Four trees of 1000 entries, each entry of one the next tree: 10**12 entries to walk,
    a few hundred kilobytes to store."""
    leaf = _tree(saver, [_file(saver, f"f{i:03}", b"x") for i in range(1000)])
    for _level in range(3):
        leaf = _tree(saver, [_dir(f"d{i:03}", leaf) for i in range(1000)])
    return _snapshot(repo, saver, [_dir("bomb", leaf), _file(saver, "safe.txt", b"safe")])


def _nested(repo: Any, saver: BlobSaver, levels: int) -> str:
    """`levels` trees, each holding the next one (and the deepest a file)."""
    tree = _tree(saver, [_file(saver, "bottom.txt", b"at the bottom")])
    for _level in range(levels - 1):
        tree = _tree(saver, [_dir("d", tree)])
    return _snapshot(repo, saver, [_dir("deep", tree)])


def _refused(result: Any, started: float) -> str:
    assert result.code == 1, (result.last, result.stderr)
    assert result.last["error"] == "TreeLimitExceeded", result.last
    assert time.monotonic() - started < 60, "refused after a few loads, not after a walk"
    return str(result.last["message"])


@pytest.mark.parametrize("attack", ["fan-out", "depth"])
def test_a_tree_past_a_limit_is_refused_by_every_walk_and_nothing_is_written(
        vault_repo: Any, open_repo: Any, tmp_path: Path, attack: str) -> None:
    repo = open_repo()
    saver = BlobSaver(repo)
    if attack == "fan-out":
        snapshot_id = _fan_out_bomb(repo, saver)
        why = "more than 100000000 entries below it"
    else:
        snapshot_id = _nested(repo, saver, MAX_TREE_DEPTH + 1)
        why = f"directories nested deeper than {MAX_TREE_DEPTH} levels"
    other = _snapshot(repo, saver, [_file(saver, "a.txt", b"a")])
    target = tmp_path / "target"

    started = time.monotonic()
    message = _refused(vault_repo.json("restore", snapshot_id, "--target", target), started)
    assert why in message and "hostile" in message, message
    assert not target.exists()
    failed = vault_repo.events("CommandFailed")
    assert [(e["payload"]["command"], e["payload"]["error_kind"]) for e in failed] == [
        ("restore", "TreeLimitExceeded")], failed

    for args in (("ls", "-R", snapshot_id), ("diff", other, snapshot_id),
                 ("restore", "--dry-run", snapshot_id, "--target", target)):
        started = time.monotonic()
        assert why in _refused(vault_repo.json(*args), started), args
    assert not target.exists()


def test_a_tree_as_deep_as_the_limit_restores(vault_repo: Any, open_repo: Any,
                                              tmp_path: Path) -> None:
    repo = open_repo()
    snapshot_id = _nested(repo, BlobSaver(repo), MAX_TREE_DEPTH - 1)  # + the root tree
    target = tmp_path / "target"
    result = vault_repo.json("restore", snapshot_id, "--target", target)
    assert result.code == 0, (result.last, result.stderr)
    bottom = Path(target, "deep", *["d"] * (MAX_TREE_DEPTH - 2), "bottom.txt")
    assert bottom.read_bytes() == b"at the bottom"
    listed = vault_repo.json("ls", "-R", snapshot_id)
    assert listed.code == 0, listed.last
    assert len(listed.summary["entries"]) == MAX_TREE_DEPTH


def test_a_queued_restore_whose_latest_became_a_bomb_fails_in_the_worker(
        vault_repo: Any, open_repo: Any, tmp_path: Path) -> None:
    """`latest` was a harmless snapshot when the restore was queued (the command refuses a
    bomb itself); by the time the worker runs it, `latest` is a bomb: the worker refuses
    it (RestoreFailed, with the limit), writes nothing, and goes on."""
    from vault.config.model import load_config
    from vault.jobs.commands import JobCommand, RestoreArgs
    from vault.jobs.tasks import execute

    repo = open_repo()
    saver = BlobSaver(repo)
    _snapshot(repo, saver, [_file(saver, "a.txt", b"harmless")])
    target = tmp_path / "target"
    queued = vault_repo.json("restore", "latest", "-t", target, "--queue")
    assert queued.code == 0, queued.last
    _fan_out_bomb(repo, saver)

    command = JobCommand(job_id=queued.summary["job_id"], repository=str(vault_repo.env.repo),
                         args=RestoreArgs(snapshot_ref="latest", target=str(target)))
    assert execute(command, load_config()) == "failed"
    assert not target.exists()
    [failed] = [e["payload"] for e in vault_repo.events("RestoreFailed")]
    assert failed["error_kind"] == "TreeLimitExceeded"
    assert "more than 100000000 entries below it" in failed["message"]


def test_verify_names_a_damaged_bomb_instead_of_tracing_every_path(
        vault_repo: Any, open_repo: Any) -> None:
    """The damage trace lists every path through a bad blob: of a bomb, it names the
    limit instead (the bomb's only data blob is in a pack that went missing)."""
    repo = open_repo()
    first = BlobSaver(repo)
    blob, _new = first.save(BlobType.DATA, b"x")
    first.flush()
    repo.load_index()
    data_pack = repo.index.get(blob).pack_id
    snapshot_id = _fan_out_bomb(repo, BlobSaver(repo))
    repo.storage.remove("data", data_pack)

    started = time.monotonic()
    result = vault_repo.json("verify")
    assert result.code == 1, (result.last, result.stderr)
    assert time.monotonic() - started < 60
    problems = result.summary["problems"]
    assert any(p.startswith(f"snapshot {snapshot_id[:8]}: refused tree")
               and "more than 100000000 entries below it" in p for p in problems), problems
    assert any(data_pack[:12] in p and "missing" in p for p in problems), problems
