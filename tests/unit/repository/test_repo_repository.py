"""Repository: opening, keys, blobs, snapshots, and recovery of unindexed packs."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vault.errors import (
    IntegrityError,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    UnsupportedFormat,
    UsageError,
    WrongPassphrase,
)
from vault.repository.blob import BlobType
from vault.repository.crypto import storage_id
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node, encode_tree
from vault.storage.local import LocalStorage

PASSWORD = "correct horse battery staple 7f3a"  # the conftest's PASSWORD


def reopen(repo: Repository, passphrase: str = PASSWORD) -> Repository:
    return Repository.open(LocalStorage(repo.storage.location), passphrase)


def snapshot(tree: bytes, when: datetime | None = None, **fields: object) -> Snapshot:
    return Snapshot(time=when or datetime.now(UTC), host=socket.gethostname(), user="t",
                    uid=0, paths=["/data"], tree=tree.hex(), vault_version="test",
                    **fields)  # type: ignore[arg-type]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


# --- opening ------------------------------------------------------------------------------


def test_open_with_the_passphrase(unlocked_repo: Repository) -> None:
    again = reopen(unlocked_repo)
    assert (again.id, again.key_id) == (unlocked_repo.id, unlocked_repo.key_id)
    assert again.chunker_params == unlocked_repo.chunker_params
    assert again.chunker_params.avg_size == 64 << 10
    assert again.chunker_seed == unlocked_repo.chunker_seed
    with pytest.raises(WrongPassphrase):
        reopen(unlocked_repo, "wrong")


def test_init_refuses_an_existing_repository(unlocked_repo: Repository) -> None:
    with pytest.raises(RepositoryExists):
        Repository.init(LocalStorage(unlocked_repo.location), "other")


def test_open_without_a_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound, match="vault init"):
        Repository.open(LocalStorage(tmp_path / "nothing"), "x")


def test_a_newer_format_is_refused(unlocked_repo: Repository) -> None:
    config_path = Path(unlocked_repo.location) / "config"
    config = json.loads(config_path.read_text())
    config["version"] = 99
    config_path.write_text(json.dumps(config))
    with pytest.raises(UnsupportedFormat, match="99"):
        reopen(unlocked_repo)


def test_a_damaged_key_file_does_not_lock_out_the_others(unlocked_repo: Repository) -> None:
    second = unlocked_repo.add_key("second passphrase", "spare")
    keys_dir = Path(unlocked_repo.location) / "keys"
    (keys_dir / unlocked_repo.key_id).write_text("{ not json")
    assert reopen(unlocked_repo, "second passphrase").key_id == second


def test_keys(unlocked_repo: Repository) -> None:
    second = unlocked_repo.add_key("second", None)
    assert reopen(unlocked_repo, "second").key_id == second
    with pytest.raises(UsageError, match="refusing"):
        unlocked_repo.remove_key(unlocked_repo.key_id)
    unlocked_repo.remove_key(second)
    with pytest.raises(WrongPassphrase):
        reopen(unlocked_repo, "second")


# --- blobs --------------------------------------------------------------------------------


def test_saved_blobs_load_back_and_deduplicate(unlocked_repo: Repository) -> None:
    saver = BlobSaver(unlocked_repo)
    a, new_a = saver.save(BlobType.DATA, b"A" * 10_000)
    again, new_again = saver.save(BlobType.DATA, b"A" * 10_000)
    b, _ = saver.save(BlobType.DATA, b"B")
    saver.flush()
    assert (a, new_a, new_again) == (again, True, False)
    assert saver.stats.blobs_new == 2 and saver.stats.bytes_new == 10_001
    assert saver.stats.bytes_stored < 10_001  # compressed
    fresh = reopen(unlocked_repo)
    assert fresh.load_blob(a) == b"A" * 10_000
    assert fresh.load_blob(b) == b"B"
    assert fresh.find_blob(a).compressed and not fresh.find_blob(b).compressed
    with pytest.raises(IntegrityError, match="not in any index"):
        fresh.load_blob(b"\x00" * 32)


def test_a_flipped_byte_in_a_blob_is_an_integrity_error(unlocked_repo: Repository) -> None:
    saver = BlobSaver(unlocked_repo)
    blob, _ = saver.save(BlobType.DATA, b"precious" * 100)
    saver.flush()
    entry = unlocked_repo.find_blob(blob)
    pack = Path(unlocked_repo.location) / "data" / entry.pack_id[:2] / entry.pack_id
    flip(pack, entry.offset + entry.length // 2)
    with pytest.raises(IntegrityError, match=blob.hex()[:12]):
        reopen(unlocked_repo).load_blob(blob)


def test_open_blob_checks_length_and_id(unlocked_repo: Repository) -> None:
    saver = BlobSaver(unlocked_repo)
    blob, _ = saver.save(BlobType.DATA, b"x" * 1000)
    saver.flush()
    entry = unlocked_repo.find_blob(blob)
    sealed = unlocked_repo.storage.load("data", entry.pack_id, entry.offset, entry.length)
    assert unlocked_repo.open_blob(entry, sealed) == b"x" * 1000
    with pytest.raises(IntegrityError):
        unlocked_repo.open_blob(replace(entry, raw_length=999), sealed)


def test_parallel_saves_of_the_same_data_store_it_once(unlocked_repo: Repository) -> None:
    saver = BlobSaver(unlocked_repo, pack_size=4096)
    chunks = [bytes([i]) * 3000 for i in range(40)]
    results: list[bool] = []
    lock = threading.Lock()

    def work() -> None:
        for chunk in chunks:
            _id, new = saver.save(BlobType.DATA, chunk)
            with lock:
                results.append(new)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saver.flush()
    assert results.count(True) == 40
    fresh = reopen(unlocked_repo)
    fresh.load_index()
    assert len(fresh.index) == 40
    assert all(fresh.load_blob(unlocked_repo.cipher.blob_id(c)) == c for c in chunks)


def test_dry_run_saver_writes_nothing(unlocked_repo: Repository) -> None:
    saver = BlobSaver(unlocked_repo, dry_run=True)
    saver.save(BlobType.DATA, b"would be stored" * 100)
    saver.flush()
    assert saver.stats.blobs_new == 1 and saver.stats.bytes_stored > 0
    assert list(unlocked_repo.storage.list("data")) == []
    assert list(unlocked_repo.storage.list("index")) == []


def test_index_files_are_written_every_n_packs(unlocked_repo: Repository) -> None:
    saver = BlobSaver(unlocked_repo, pack_size=1, index_every=3)
    for i in range(7):
        saver.save(BlobType.DATA, bytes([i]) * 100)
    assert len(list(unlocked_repo.storage.list("data"))) == 7
    assert len(list(unlocked_repo.storage.list("index"))) == 2
    saver.flush()
    assert len(list(unlocked_repo.storage.list("index"))) == 3


# --- unindexed packs (a killed backup) ----------------------------------------------------


def test_unindexed_packs_are_recovered(unlocked_repo: Repository) -> None:
    saver = BlobSaver(unlocked_repo, pack_size=1, index_every=1000)
    blobs = [saver.save(BlobType.DATA, bytes([i]) * 5000)[0] for i in range(3)]
    # Killed here: three packs saved, no index written.
    after_kill = reopen(unlocked_repo)
    assert len(after_kill.unindexed_packs()) == 3
    with pytest.raises(IntegrityError):
        after_kill.load_blob(blobs[0])
    assert after_kill.recover_unindexed_packs() == 3
    assert after_kill.unindexed_packs() == []
    assert [after_kill.load_blob(b) for b in blobs] == [bytes([i]) * 5000 for i in range(3)]
    assert reopen(unlocked_repo).unindexed_packs() == []  # the recovery index is durable


def test_a_damaged_unindexed_pack_is_skipped(unlocked_repo: Repository) -> None:
    saver = BlobSaver(unlocked_repo, pack_size=1, index_every=1000)
    saver.save(BlobType.DATA, b"one" * 1000)
    saver.save(BlobType.DATA, b"two" * 1000)
    packs = sorted(p for p in Path(unlocked_repo.location, "data").rglob("*") if p.is_file())
    flip(packs[0], packs[0].stat().st_size - 10)  # inside the sealed header
    after_kill = reopen(unlocked_repo)
    assert after_kill.recover_unindexed_packs() == 1
    assert after_kill.unindexed_packs() == [packs[0].name]


# --- trees and snapshots ------------------------------------------------------------------


def _tree(repo: Repository) -> bytes:
    saver = BlobSaver(repo)
    data, _ = saver.save(BlobType.DATA, b"content")
    inner = encode_tree([Node(name="f", type="file", mode=0o100644, mtime_ns=1, size=7,
                              content=[data])])
    inner_id, _ = saver.save(BlobType.TREE, inner)
    root, _ = saver.save(BlobType.TREE, encode_tree([
        Node(name="d", type="dir", mode=0o40755, mtime_ns=2, subtree=inner_id)]))
    saver.flush()
    return root


def test_walk_and_load_tree(unlocked_repo: Repository) -> None:
    root = _tree(unlocked_repo)
    walked = [(path, node.type) for path, node in unlocked_repo.walk(root)]
    assert walked == [("d", "dir"), ("d/f", "file")]


def test_snapshots_round_trip_and_are_named_by_content(unlocked_repo: Repository) -> None:
    root = _tree(unlocked_repo)
    snap = snapshot(root, tags=["a"])
    snapshot_id = unlocked_repo.save_snapshot(snap)
    stored = Path(unlocked_repo.location) / "snapshots" / snapshot_id
    assert storage_id(stored.read_bytes()) == snapshot_id
    loaded = reopen(unlocked_repo).load_snapshot(snapshot_id)
    assert loaded.id == snapshot_id and loaded.tags == ["a"] and loaded.tree == root.hex()
    assert b"/data" not in stored.read_bytes()  # encrypted, paths included


def test_a_tampered_snapshot_is_refused(unlocked_repo: Repository) -> None:
    snapshot_id = unlocked_repo.save_snapshot(snapshot(_tree(unlocked_repo)))
    stored = Path(unlocked_repo.location) / "snapshots" / snapshot_id
    flip(stored, 40)
    with pytest.raises(IntegrityError, match=snapshot_id[:12]):
        reopen(unlocked_repo).load_snapshot(snapshot_id)


def test_find_snapshot(unlocked_repo: Repository) -> None:
    root = _tree(unlocked_repo)
    now = datetime.now(UTC)
    ids = [unlocked_repo.save_snapshot(snapshot(root, now + timedelta(minutes=i), tags=[str(i)]))
           for i in range(3)]
    repo = reopen(unlocked_repo)
    assert [s.id for s in repo.snapshots()] == ids  # oldest first
    assert repo.find_snapshot("latest").id == ids[2]
    assert repo.find_snapshot(ids[1][:6]).id == ids[1]
    with pytest.raises(SnapshotNotFound):
        repo.find_snapshot(ids[1][:3])  # too short to be taken as a prefix
    with pytest.raises(SnapshotNotFound):
        repo.find_snapshot("")
    repo.remove_snapshot(ids[2])
    assert repo.find_snapshot("latest").id == ids[1]
