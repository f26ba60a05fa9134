"""The metadata cache on real local storage: content-hash-named objects are served from
disk after the first read, checked on every read (a damaged entry is fetched again), never
cached when the download does not match its name, dropped when a complete listing no longer
shows them; tree blobs are cached by the repository, file data never."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vault.repository.blob import BlobType
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver
from vault.repository.tree import Node, encode_tree
from vault.storage.cache import MetadataCache, metadata_cache
from vault.storage.local import LocalStorage
from vault.storage.stack import bind_cache, decorated

PASSWORD = "cache-test-passphrase"


def _cache(tmp_path: Path) -> MetadataCache:
    inner = LocalStorage(tmp_path / "repo")
    inner.create()
    return MetadataCache(inner, tmp_path / "cache")


def _named(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_read_object_is_served_from_disk_afterwards(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    data = os.urandom(5000)
    name = _named(data)
    cache.inner.save("index", name, data)  # written by another host: not through the cache
    assert cache.load("index", name) == data
    assert (cache.miss_bytes, cache.hit_bytes) == (5000, 0)
    cache.inner.remove("index", name)  # gone remotely: the cache still answers ...
    assert cache.load("index", name) == data
    assert cache.hit_bytes == 5000
    path = tmp_path / "cache" / "index" / name
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    assert list(cache.list("index")) == []  # ... until a listing shows it is gone
    assert not path.exists()


def test_saves_write_through_and_removals_drop(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    data = os.urandom(3000)
    name = _named(data)
    cache.save("snapshots", name, data)
    assert (tmp_path / "cache" / "snapshots" / name).read_bytes() == data
    cache.remove("snapshots", name)
    assert not (tmp_path / "cache" / "snapshots" / name).exists()
    cache.save("data", "ab" * 32, data)  # packs are not cached whole
    assert not (tmp_path / "cache" / "data").exists()


def test_a_damaged_entry_is_fetched_again(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    data = os.urandom(4096)
    name = _named(data)
    cache.save("index", name, data)
    path = tmp_path / "cache" / "index" / name
    path.write_bytes(data[:100] + bytes([data[100] ^ 0x80]) + data[101:])
    assert cache.load("index", name) == data
    assert cache.miss_bytes == 4096 and path.read_bytes() == data


def test_a_download_that_does_not_match_its_name_is_not_cached(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    name = _named(b"what it should be")
    cache.inner.save("index", name, b"something else")
    assert cache.load("index", name) == b"something else"  # the caller reports it
    assert not (tmp_path / "cache" / "index" / name).exists()


def test_ranges_are_checked_and_dropped_with_their_pack(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    pack = os.urandom(10000)
    name = _named(pack)
    cache.inner.save("data", name, pack)
    assert cache.cached_range("data", name, 1000, 500) is None
    cache.keep_range("data", name, 1000, 500, cache.load("data", name, 1000, 500))
    assert cache.cached_range("data", name, 1000, 500) == pack[1000:1500]
    entry = tmp_path / "cache" / "data" / name / "1000-500"
    stored = entry.read_bytes()
    assert stored[:500] == pack[1000:1500] and len(stored) == 532
    entry.write_bytes(b"\0" + stored[1:])
    assert cache.cached_range("data", name, 1000, 500) is None  # damaged: dropped
    assert not entry.exists()
    cache.keep_range("data", name, 1000, 500, pack[1000:1500])
    cache.remove("data", name)
    assert not entry.parent.exists()


def test_an_unbound_cache_passes_everything_through(tmp_path: Path) -> None:
    inner = LocalStorage(tmp_path / "repo")
    storage = decorated(inner, "s3://bucket/prefix")  # remote: a cache, not yet bound
    assert isinstance(storage, MetadataCache) and metadata_cache(storage) is None
    inner.create()
    data = b"x" * 100
    storage.save("index", _named(data), data)
    assert storage.load("index", _named(data)) == data
    assert not any(tmp_path.glob("cache*"))
    assert bind_cache(storage, lambda: tmp_path / "cache")
    assert metadata_cache(storage) is storage
    assert not bind_cache(inner, lambda: tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert decorated(inner, "s3://b/p", cache=False) is inner


def test_the_repository_caches_tree_blobs_and_never_file_data(tmp_path: Path,
                                                              fast_kdf: None) -> None:
    storage = _cache(tmp_path)
    repo = Repository.init(storage, PASSWORD, chunk_avg=64 << 10)
    repo.load_index()
    saver = BlobSaver(repo)
    content = os.urandom(20000)
    data_id, _ = saver.save(BlobType.DATA, content)
    tree = encode_tree([Node(name="f", type="file", mode=0o100644, size=len(content),
                             mtime_ns=0, content=[data_id])])
    tree_id, _ = saver.save(BlobType.TREE, tree)
    saver.flush()

    reopened = Repository.open(storage, PASSWORD)
    assert reopened.load_blob(data_id) == content
    assert [n.name for n in reopened.load_tree(tree_id)] == ["f"]
    ranges = list((tmp_path / "cache" / "data").rglob("*-*"))
    entry = reopened.find_blob(tree_id)
    assert [r.name for r in ranges] == [f"{entry.offset}-{entry.length}"]
    before = storage.hit_bytes
    assert [n.name for n in reopened.load_tree(tree_id)] == ["f"]
    assert storage.hit_bytes == before + entry.length

    # A copy in the cache that is whole but does not authenticate (a forged digest) is
    # dropped and the tree read from the repository: no damage is recorded for it.
    forged = os.urandom(entry.length)
    ranges[0].write_bytes(forged + hashlib.sha256(forged).digest())
    again = Repository.open(storage, PASSWORD)
    assert [n.name for n in again.load_tree(tree_id)] == ["f"]
    assert not again.found_damage.blobs and not again.found_damage.packs
    assert ranges[0].read_bytes()[:entry.length] != forged


def test_read_through_judges_the_repository_and_refreshes_the_cache(tmp_path: Path) -> None:
    from vault.storage.stack import read_through

    cache = _cache(tmp_path)
    data = os.urandom(2048)
    name = _named(data)
    cache.save("index", name, data)
    cache.inner.save("index", name, b"damaged in the repository")
    assert cache.load("index", name) == data  # the cached copy, as everyday commands see
    read_through(cache)
    assert cache.load("index", name) == b"damaged in the repository"  # what verify sees
    cache.keep_range("data", "ab" * 32, 0, 4, b"tree")
    assert cache.cached_range("data", "ab" * 32, 0, 4) is None
