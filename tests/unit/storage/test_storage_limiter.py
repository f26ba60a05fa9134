"""The bandwidth limit, measured on a real local repository: N bytes through a limit of
L bytes/s take at least (N - burst) / L seconds, from one thread or from several sharing
the bucket. Only a lower bound is asserted: a loaded machine may always be slower."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vault.storage.base import ConditionalCreate
from vault.storage.limiter import LimitedStorage, TokenBucket, kib_per_second
from vault.storage.local import LocalStorage
from vault.storage.stack import decorated

LIMIT_KIB = 512
OBJECT = 256 << 10  # 8 objects: 2 MiB


def _storage(tmp_path: Path, *, upload: int | None = None,
             download: int | None = None) -> LimitedStorage:
    inner = LocalStorage(tmp_path / "repo")
    inner.create()
    return LimitedStorage(inner, kib_per_second(upload), kib_per_second(download))


def _objects(count: int) -> dict[str, bytes]:
    blobs = [os.urandom(OBJECT) for _ in range(count)]
    return {hashlib.sha256(b).hexdigest(): b for b in blobs}


def _minimum_seconds(total: int, bucket: TokenBucket) -> float:
    return (total - bucket.burst) / bucket.rate


@pytest.mark.parametrize("threads", [1, 4])
def test_uploads_take_at_least_their_size_over_the_limit(tmp_path: Path, threads: int) -> None:
    storage = _storage(tmp_path, upload=LIMIT_KIB)
    objects = _objects(8)
    assert storage.upload is not None
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: storage.save("data", *item), objects.items()))
    elapsed = time.monotonic() - started

    total = sum(map(len, objects.values()))
    assert elapsed >= _minimum_seconds(total, storage.upload) >= 3.0
    for name, data in objects.items():  # unthrottled direction: read back at once
        assert storage.load("data", name) == data


def test_downloads_take_at_least_their_size_over_the_limit(tmp_path: Path) -> None:
    storage = _storage(tmp_path, download=LIMIT_KIB)
    objects = _objects(8)
    for name, data in objects.items():
        storage.save("data", name, data)
    assert storage.download is not None
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        loaded = dict(zip(objects, pool.map(lambda n: storage.load("data", n), objects),
                          strict=True))
    elapsed = time.monotonic() - started

    assert loaded == objects
    assert elapsed >= _minimum_seconds(sum(map(len, objects.values())), storage.download)


def test_ranged_loads_count_only_the_bytes_they_bring(tmp_path: Path) -> None:
    storage = _storage(tmp_path, download=64)
    (name, data), = _objects(1).items()
    storage.save("data", name, data)
    started = time.monotonic()
    for offset in range(0, 64 << 10, 4096):  # 64 KiB in all: within the burst
        assert storage.load("data", name, offset, 4096) == data[offset:offset + 4096]
    assert time.monotonic() - started < 30  # not one 256 KiB object per read (64 s)


def test_listing_and_metadata_pass_unthrottled(tmp_path: Path) -> None:
    storage = _storage(tmp_path, upload=1, download=1)
    storage.inner.save("index", "ab" * 32, os.urandom(4096))
    started = time.monotonic()
    for _ in range(50):
        assert [i.name for i in storage.list("index")] == ["ab" * 32]
        assert storage.stat("index", "ab" * 32).size == 4096
        assert storage.exists("index", "ab" * 32)
    assert time.monotonic() - started < 30  # 50 x 8 KiB at 1 KiB/s would take 400 s


def test_the_stack_limits_only_when_asked_and_keeps_conditional_writes(tmp_path: Path) -> None:
    inner = LocalStorage(tmp_path / "repo")
    url = str(tmp_path / "repo")
    assert decorated(inner, url) is inner  # local: no cache, no limit
    limited = decorated(inner, url, limit_upload_kib=100)
    assert isinstance(limited, LimitedStorage) and limited.download is None
    assert isinstance(limited, ConditionalCreate)  # forwarded ...
    assert limited.enforces_conditional_put() is False  # ... and honest: local has none


def test_a_bucket_refuses_a_rate_of_zero() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
    assert kib_per_second(None) is None


def test_limits_come_from_the_entry_and_the_flags_win(tmp_path: Path) -> None:
    from vault.config.model import load_config
    from vault.operations.copy import configured_vault
    from vault.runtime.app import StorageOptions, Vault

    config_file = tmp_path / "vault.toml"
    config_file.write_text(
        f'[[repositories]]\nname = "local"\nurl = "{tmp_path / "a"}"\nlimit_upload = 100\n'
        f'[[repositories]]\nname = "offsite"\nurl = "{tmp_path / "b"}"\n'
        "limit_download = 300\n")
    config = load_config(config_file, env={})
    configured = Vault(config).storage
    assert isinstance(configured, LimitedStorage) and configured.download is None
    assert configured.upload is not None and configured.upload.rate == 100 * 1024

    flagged = Vault(config, storage_options=StorageOptions(limit_upload_kib=50)).storage
    assert isinstance(flagged, LimitedStorage) and flagged.upload is not None
    assert flagged.upload.rate == 50 * 1024

    offsite, _name = configured_vault(
        Vault(config, storage_options=StorageOptions(limit_upload_kib=50)), "offsite")
    destination = offsite.storage  # a copy's destination: its own entry, and the flags
    assert isinstance(destination, LimitedStorage)
    assert destination.upload is not None and destination.upload.rate == 50 * 1024
    assert destination.download is not None and destination.download.rate == 300 * 1024


def test_lock_writes_never_wait_behind_packs(tmp_path: Path) -> None:
    """A heartbeat queued behind packs at a low limit could outlive its lease: lock
    objects pass unthrottled and take nothing from the packs' budget."""
    waits: list[float] = []
    now = [0.0]
    bucket = TokenBucket(64 * 1024, clock=lambda: now[0], sleep=waits.append)
    inner = LocalStorage(tmp_path / "repo")
    inner.create()
    storage = LimitedStorage(inner, bucket, None)
    big = os.urandom(1 << 20)  # 16 s of budget at 64 KiB/s

    storage.save("locks", "a" * 64, big)
    storage.save("locks", "b" * 64, big)
    assert waits == []
    storage.save("data", hashlib.sha256(big).hexdigest(), big)
    assert waits == [pytest.approx((len(big) - bucket.burst) / bucket.rate)]
    assert inner.load("locks", "a" * 64) == big
