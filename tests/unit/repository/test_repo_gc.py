"""Garbage collection: the pure plan, and the two-phase deletion next to a backup.

The backup/prune races are played out deterministically in one process: a "backup" is a
second Repository instance with its own BlobSaver, and the locks that prune sees alive
are given by the test.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest

from vault.errors import UsageError
from vault.foundation.progress import NullReporter, ProgressCounter
from vault.repository.blob import BlobEntry, BlobType
from vault.repository.condemned import load_records
from vault.repository.gc import (
    Collector,
    PackUsage,
    pack_usage,
    parse_max_unused,
    plan_prune,
)
from vault.repository.index import MasterIndex
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node, encode_tree
from vault.storage.local import LocalStorage

PASSWORD = "correct horse battery staple 7f3a"  # the conftest's PASSWORD


def reopen(repo: Repository) -> Repository:
    again = Repository.open(LocalStorage(repo.storage.location), PASSWORD)
    again.load_index()
    return again


def backup(repo: Repository, files: dict[str, bytes], *, commit: bool = True) -> Snapshot:
    """One blob per file, a root tree, a snapshot (unless `commit` is False: then the
    caller saves it, to play the moment of the commit)."""
    saver = BlobSaver(repo, pack_size=1 << 20)
    nodes = []
    for name, data in sorted(files.items()):
        blob_id, _new = saver.save(BlobType.DATA, data)
        nodes.append(Node(name=name, type="file", mode=0o100644, mtime_ns=0, uid=0, gid=0,
                          size=len(data), content=[blob_id]))
    tree, _new = saver.save(BlobType.TREE, encode_tree(nodes))
    saver.flush()
    snap = Snapshot(time=datetime.now(UTC), host=socket.gethostname(), user="t", uid=0,
                    paths=["/d"], tree=tree.hex(), vault_version="test")
    if commit:
        repo.save_snapshot(snap)
    return snap


def collector(repo: Repository, live: Iterable[str] = ()) -> Collector:
    return Collector(repo, job_id="prune-test", pack_size=1 << 20,
                     live_locks=lambda: set(live), check_lock=lambda: None,
                     progress=lambda phase: ProgressCounter(NullReporter(), phase))


def prune(repo: Repository, live: Iterable[str] = (), max_unused: float = 0.0) -> Collector:
    c = collector(reopen(repo), live)
    c.run(max_unused)
    return c


def assert_restorable(repo: Repository) -> None:
    """Every snapshot's every blob loads through a freshly loaded index."""
    fresh = reopen(repo)
    for snap in fresh.snapshots():
        for _path, node in fresh.walk(bytes.fromhex(snap.tree)):
            for blob_id in node.content:
                fresh.load_blob(blob_id)


def packs(repo: Repository) -> set[str]:
    return {info.name for info in repo.storage.list("data")}


def blob(i: int, size: int = 50_000) -> bytes:
    return bytes([i % 251]) * 7 + i.to_bytes(4, "little") * (size // 4)


# --- the plan (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "share"), [("5%", 0.05), ("0", 0.0), ("100%", 1.0),
                                             (" 12.5 % ", 0.125)])
def test_parse_max_unused(text: str, share: float) -> None:
    assert parse_max_unused(text) == share


@pytest.mark.parametrize("text", ["", "lots", "-1%", "101%", "5%%"])
def test_parse_max_unused_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_max_unused(text)


def test_plan_drops_unused_and_repacks_above_the_threshold() -> None:
    usage = [
        PackUsage("aa", 1000, used_blobs=0, unused_blobs=3, used_bytes=0),
        PackUsage("bb", 1000, used_blobs=2, unused_blobs=1, used_bytes=900),  # 10% unused
        PackUsage("cc", 1000, used_blobs=1, unused_blobs=2, used_bytes=300),  # 70% unused
        PackUsage("dd", 1000, used_blobs=4, unused_blobs=0, used_bytes=1000),
    ]
    plan = plan_prune(usage, 0.05)
    assert (plan.delete, plan.repack, plan.keep) == (["aa"], ["bb", "cc"], ["dd"])
    assert plan.blobs_removed == 3 + 1 + 2
    assert plan.estimated_bytes_freed == 3000 - 1200
    lenient = plan_prune(usage, 0.5)
    assert (lenient.delete, lenient.repack, lenient.keep) == (["aa"], ["cc"], ["bb", "dd"])


def test_pack_usage_counts_a_duplicate_copy_as_unused() -> None:
    index = MasterIndex()
    one, two = b"\x01" * 32, b"\x02" * 32
    index.add_pack("aa", 500, [BlobEntry(one, BlobType.DATA, "aa", 0, 200, 150, 0),
                               BlobEntry(two, BlobType.DATA, "aa", 200, 200, 150, 0)])
    index.add_pack("bb", 300, [BlobEntry(one, BlobType.DATA, "bb", 0, 200, 150, 0)])
    usage = pack_usage(index, {one, two})
    assert usage["aa"].used_blobs == 2
    assert usage["bb"].used_blobs == 0  # the index resolves `one` to pack aa
    assert plan_prune(usage.values(), 0.05).delete == ["bb"]


# --- executing ------------------------------------------------------------------------------


def test_prune_reclaims_what_no_snapshot_uses(unlocked_repo: Repository) -> None:
    repo = unlocked_repo
    old = backup(repo, {f"f{i}": blob(i) for i in range(40)})
    backup(repo, {f"f{i}": blob(i) for i in range(0, 40, 4)})
    repo.remove_snapshot(old.id)
    before = sum(info.size for info in repo.storage.list("data"))
    c = prune(repo)
    after = sum(info.size for info in repo.storage.list("data"))
    assert c.stats.packs_deleted > 0 and c.stats.bytes_deleted > c.stats.bytes_written
    assert after == before - c.stats.bytes_deleted + c.stats.bytes_written
    assert after < before / 2
    assert load_records(repo) == []
    assert_restorable(repo)
    fresh = reopen(repo)
    assert set(fresh.index.pack_sizes) == packs(repo), "index and packs agree exactly"
    assert len(fresh.index) == 10 + 1  # ten data blobs and the tree


def test_condemned_packs_wait_for_older_locks(unlocked_repo: Repository) -> None:
    repo = unlocked_repo
    gone = backup(repo, {"x": blob(1)})
    backup(repo, {"y": blob(2)})
    repo.remove_snapshot(gone.id)
    all_packs = packs(repo)
    c = prune(repo, live={"a-backup-lock"})
    assert c.stats.packs_deleted == 0 and c.pending()[0] >= 1
    assert packs(repo) == all_packs, "nothing deleted while an older lock is alive"
    record = load_records(repo)[0]
    assert record.locks == ["a-backup-lock"]
    fresh = reopen(repo)
    assert not set(record.packs) & set(fresh.index.pack_sizes)
    assert fresh.unindexed_packs() == [], "condemned packs are never recovered"
    assert_restorable(repo)

    later = prune(repo, live={"a-newer-lock"})  # a lock taken after the switch
    assert later.stats.packs_deleted == len(record.packs)
    assert load_records(repo) == []
    assert_restorable(repo)


def test_backup_that_deduplicated_against_a_condemned_pack_rescues_it(
        unlocked_repo: Repository) -> None:
    repo = unlocked_repo
    gone = backup(repo, {"x": blob(1)})
    backup(repo, {"y": blob(2)})
    repo.remove_snapshot(gone.id)

    # A backup starts (loads the index) and reuses x's blob before prune drops it.
    b = reopen(repo)
    snap = backup(b, {"x": blob(1), "z": blob(3)}, commit=False)
    prune(repo, live={"the-backup"})
    condemned = set(load_records(repo)[0].packs)
    assert blob_pack(b, blob(1)) in condemned

    b.save_snapshot(snap)  # the commit re-indexes what it relies on
    assert_restorable(repo)
    c = prune(repo)  # the backup has ended: settle
    assert c.stats.packs_rescued == 0
    assert_restorable(repo)


def test_snapshot_committed_after_its_check_is_rescued_by_prune(
        unlocked_repo: Repository) -> None:
    # The other half of the handshake: the backup checked before prune's record existed
    # (played by not pinning anything), so prune's scan after the switch must catch it.
    repo = unlocked_repo
    gone = backup(repo, {"x": blob(1)})
    backup(repo, {"y": blob(2)})
    repo.remove_snapshot(gone.id)
    b = reopen(repo)
    snap = backup(b, {"x": blob(1)}, commit=False)
    b.pinned_blobs.clear()

    c = collector(reopen(repo), live={"the-backup"})
    c.finish_switches()
    plan = plan_prune(pack_usage(c.repo.index, c.scan()).values(), 0.0)
    c.switch_index(plan, c.repack(plan))
    b.save_snapshot(snap)  # commits between prune's switch and its settle
    c.settle()
    assert c.stats.packs_rescued == 1
    assert_restorable(repo)
    prune(repo)
    assert_restorable(repo)


def test_a_switch_killed_halfway_is_finished_by_the_next_prune(
        unlocked_repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = unlocked_repo
    gone = backup(repo, {f"f{i}": blob(i) for i in range(8)})
    backup(repo, {"f0": blob(0)})
    repo.remove_snapshot(gone.id)

    def killed(self: Collector, record: object) -> None:
        raise KeyboardInterrupt  # the record is saved, the old index not yet removed

    with monkeypatch.context() as m:
        m.setattr(Collector, "_finish_switch", killed)
        with pytest.raises(KeyboardInterrupt):
            prune(repo)
    assert [r.switched for r in load_records(repo)] == [False]
    assert_restorable(repo)  # old and new index files side by side: still consistent

    c = prune(repo)
    assert load_records(repo) == []
    assert c.stats.packs_deleted > 0
    assert_restorable(repo)
    fresh = reopen(repo)
    assert set(fresh.index.pack_sizes) == packs(repo)


def blob_pack(repo: Repository, data: bytes) -> str:
    entry = repo.index.get(repo.cipher.blob_id(data))
    assert entry is not None
    return entry.pack_id
