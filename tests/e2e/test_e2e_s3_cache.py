"""The metadata cache, remembered usage figures and bandwidth limits of a remote
repository, measured from the CLI against moto through a proxy that counts every request
and byte (tests/counting_s3_proxy.py): what a command really asked the server for."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from counting_s3_proxy import Traffic, counting_proxy
from storage_servers import BUCKET, S3Server, moto_missing, moto_s3


@pytest.fixture(scope="module")
def counted() -> Iterator[tuple[S3Server, str, Traffic]]:
    missing = moto_missing()
    if missing is not None:
        pytest.skip(missing)
    with moto_s3() as server, counting_proxy(server.endpoint) as (endpoint, traffic):
        yield server, endpoint, traffic


def _env(counted: tuple[S3Server, str, Traffic], prefix: str, cache: Path) -> dict[str, Any]:
    server, endpoint, _ = counted
    return {**server.env(), "AWS_ENDPOINT_URL": endpoint, "XDG_CACHE_HOME": str(cache),
            "VAULT_REPOSITORY": f"s3://{BUCKET}/{prefix}"}


def _many_files(src: Path, dirs: int = 50, files: int = 100) -> None:
    """Enough files that index and trees dwarf the fixed cost of opening (config, keys,
    listings): what a cache must save is what grows with the repository."""
    for d in range(dirs):
        folder = src / f"dir{d:02}" / "sub"
        folder.mkdir(parents=True)
        for f in range(files):
            (folder / f"file{f:03}.txt").write_text(f"{d}/{f}\n" * (f % 7 + 1))
    (src / "random.bin").write_bytes(os.urandom(256 << 10))


def _received(traffic: Traffic, run: Any) -> tuple[int, int]:
    """(bytes received, requests) while `run()` ran."""
    traffic.clear()
    run()
    print(traffic.breakdown())
    return traffic.received(), len(traffic.snapshot())


def test_a_second_ls_reads_almost_nothing(
    vault, counted: tuple[S3Server, str, Traffic], tmp_path: Path
) -> None:
    traffic = counted[2]
    prefix = f"cache-{secrets.token_hex(4)}"
    writer = _env(counted, prefix, tmp_path / "writer-cache")
    reader = _env(counted, prefix, tmp_path / "reader-cache")  # another host's cache
    src = tmp_path / "src"
    _many_files(src)
    vault.ok("init", env=writer)
    assert vault.backup(src, env=writer)["status"] == "completed"

    def ls() -> None:
        listed = vault.json("ls", "--recursive", "latest", "/", env=reader)
        assert listed.code == 0, listed.last
        assert len(listed.summary["entries"]) > 5000

    first, first_requests = _received(traffic, ls)
    second, second_requests = _received(traffic, ls)
    print(f"ls: {first} B in {first_requests} requests, then {second} B in "
          f"{second_requests}")
    assert second <= first // 100


@pytest.mark.slow
def test_a_no_change_backup_reads_almost_nothing(
    vault, fs, counted: tuple[S3Server, str, Traffic], tmp_path: Path
) -> None:
    """What every backup command reads whatever the repository's size (config, key, the
    lock protocol, listings: about 9 KB on moto) is 1 % of the index of some 30 000
    files, which is what a no-change backup without the cache reads on top."""
    traffic = counted[2]
    prefix = f"nochange-{secrets.token_hex(4)}"
    env = _env(counted, prefix, tmp_path / "cache")
    src = tmp_path / "src"
    _many_files(src, dirs=150, files=200)
    vault.ok("init", env=env)
    assert vault.backup(src, env=env)["status"] == "completed"

    uncached, _ = _received(traffic, lambda: vault.ok("--no-cache", "backup", src, env=env))
    vault.backup(src, env=env)  # reads the snapshot and index file the uncached one wrote
    cached, cached_requests = _received(traffic, lambda: vault.backup(src, env=env))
    print(f"no-change backup: {uncached} B without the cache, {cached} B in "
          f"{cached_requests} requests with it")
    assert cached <= uncached // 100
    assert traffic.gets() == [r for r in traffic.gets() if r.path.split("/")[1:2] in
                              (["config"], ["keys"], ["locks"])], traffic.breakdown()

    target = tmp_path / "out"
    vault.restore("latest", "--target", target, env=env)
    fs.assert_same_tree(src, fs.restored_path(target, src))


def test_a_poisoned_cache_entry_is_detected_and_fetched_again(
    vault, fs, counted: tuple[S3Server, str, Traffic], tmp_path: Path
) -> None:
    traffic = counted[2]
    prefix = f"poison-{secrets.token_hex(4)}"
    env = _env(counted, prefix, tmp_path / "cache")
    src = tmp_path / "src"
    _many_files(src, dirs=3, files=20)
    vault.ok("init", env=env)
    vault.backup(src, env=env)
    vault.ok("ls", "--recursive", "latest", "/", env=env)  # trees cached too
    objects = sorted(p for p in (tmp_path / "cache").rglob("*")
                     if p.is_file() and "objects" in p.parts)
    kinds = {p.relative_to(_objects_root(p)).parts[0] for p in objects}
    assert kinds == {"index", "snapshots", "data"}
    originals = {p: p.read_bytes() for p in objects}
    for path in objects:
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        data = bytearray(originals[path])
        data[len(data) // 2] ^= 0x01  # one flipped bit in every entry
        path.write_bytes(bytes(data))

    traffic.clear()
    target = tmp_path / "out"
    vault.restore("latest", "--target", target, env=env)
    fs.assert_same_tree(src, fs.restored_path(target, src))
    fetched = {r.path.split("/")[1] for r in traffic.gets() if "/" in r.path}
    assert {"index", "snapshots", "data"} <= fetched, traffic.breakdown()
    listed = vault.json("ls", "--recursive", "latest", "/", env=env)
    assert listed.code == 0 and len(listed.summary["entries"]) > 60
    for path, original in originals.items():  # fetched again and written back whole
        assert path.read_bytes() == original
    assert vault.json("verify", env=env).code == 0


def _objects_root(path: Path) -> Path:
    while path.name != "objects":
        path = path.parent
    return path


def test_objects_pruned_elsewhere_leave_the_cache(
    vault, counted: tuple[S3Server, str, Traffic], tmp_path: Path
) -> None:
    prefix = f"pruned-{secrets.token_hex(4)}"
    here = _env(counted, prefix, tmp_path / "here")
    elsewhere = _env(counted, prefix, tmp_path / "elsewhere")
    src = tmp_path / "src"
    _many_files(src, dirs=2, files=10)
    vault.ok("init", env=here)
    first = vault.backup(src, env=here)["snapshot_id"]
    (src / "dir00" / "sub" / "file000.txt").write_text("changed\n")
    vault.backup(src, env=here)
    vault.ok("ls", "--recursive", first, "/", env=here)
    cached = _cache_names(tmp_path / "here")
    assert first in cached["snapshots"] and cached["index"] and cached["data"]

    assert vault.json("forget", first, env=elsewhere).code == 0
    assert vault.json("prune", env=elsewhere).code == 0
    stored = {kind: {n.split("/")[-1] for n in _keys(counted, prefix, f"{kind}/")}
              for kind in cached}
    stale = {kind: cached[kind] - stored[kind] for kind in cached}
    assert first in stale["snapshots"] and stale["index"]  # prune rewrote the index

    vault.ok("snapshots", env=here)  # lists the snapshots
    vault.ok("stats", env=here)  # lists the index
    assert vault.backup(src, env=here)["status"] == "completed"  # lists the packs
    after = _cache_names(tmp_path / "here")
    now_stored = {kind: {n.split("/")[-1] for n in _keys(counted, prefix, f"{kind}/")}
                  for kind in cached}
    for kind in cached:
        assert not after[kind] & stale[kind], f"{kind} removed by the prune still cached"
        assert after[kind] <= now_stored[kind], f"cached {kind} the repository lacks"
    assert after["index"] and after["snapshots"]


def _cache_names(cache: Path) -> dict[str, set[str]]:
    roots = [p for p in cache.rglob("objects") if p.is_dir()]
    found: dict[str, set[str]] = {"index": set(), "snapshots": set(), "data": set()}
    for root in roots:
        for kind in found:
            folder = root / kind
            if folder.is_dir():
                found[kind] |= {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    return found


def _keys(counted: tuple[S3Server, str, Traffic], prefix: str, folder: str) -> list[str]:
    import obstore
    from obstore.store import S3Store

    server = counted[0]
    store = S3Store(BUCKET, prefix=f"{prefix}/{folder}", endpoint=server.endpoint,
                    region="us-east-1", access_key_id=server.access_key,
                    secret_access_key=server.secret_key, virtual_hosted_style_request=False,
                    client_options={"allow_http": True})
    return [str(meta["path"]) for chunk in obstore.list(store) for meta in chunk]


def test_status_after_the_first_call_does_not_list_data(
    vault, counted: tuple[S3Server, str, Traffic], tmp_path: Path
) -> None:
    traffic = counted[2]
    prefix = f"status-{secrets.token_hex(4)}"
    env = _env(counted, prefix, tmp_path / "cache")
    src = tmp_path / "src"
    _many_files(src, dirs=2, files=10)
    vault.ok("init", env=env)
    done = vault.backup(src, env=env)
    stored = sum(info_size for info_size in _sizes(counted, prefix))

    traffic.clear()
    first = vault.json("status", env=env)
    assert first.code == 0, first.last
    assert traffic.listings("data/") == []  # the backup measured it already
    storage = first.summary["storage"]
    assert storage["used_bytes"] == stored and storage["measured_at"]
    assert done["status"] == "completed"

    for _ in range(2):
        traffic.clear()
        again = vault.json("status", env=env)
        assert again.code == 0 and traffic.listings("data/") == []
        assert again.summary["storage"]["used_bytes"] == stored
    human = vault.ok("status", env=env).stdout
    assert "measured" in human and "ago" in human

    # another host writes: the figures here stay as remembered until a refresh
    (src / "more.bin").write_bytes(os.urandom(300 << 10))
    vault.backup(src, env={**env, "XDG_STATE_HOME": str(tmp_path / "other-state"),
                           "XDG_CACHE_HOME": str(tmp_path / "other-cache")})
    assert vault.json("status", env=env).summary["storage"]["used_bytes"] == stored
    traffic.clear()
    refreshed = vault.json("stats", "--refresh", env=env)
    assert refreshed.code == 0, refreshed.last
    assert len(traffic.listings("data/")) == 1
    grown = sum(_sizes(counted, prefix))
    assert refreshed.summary["listing"]["stored_bytes"] == grown > stored
    assert vault.json("status", env=env).summary["storage"]["used_bytes"] == grown


def _sizes(counted: tuple[S3Server, str, Traffic], prefix: str) -> list[int]:
    import obstore
    from obstore.store import S3Store

    server = counted[0]
    sizes = []
    for folder in ("data/", "index/", "snapshots/"):
        store = S3Store(BUCKET, prefix=f"{prefix}/{folder}", endpoint=server.endpoint,
                        region="us-east-1", access_key_id=server.access_key,
                        secret_access_key=server.secret_key,
                        virtual_hosted_style_request=False,
                        client_options={"allow_http": True})
        sizes += [int(meta["size"]) for chunk in obstore.list(store) for meta in chunk]
    return sizes


def test_a_backup_with_an_upload_limit_completes_and_restores(
    vault, fs, counted: tuple[S3Server, str, Traffic], tmp_path: Path
) -> None:
    traffic = counted[2]
    prefix = f"limit-{secrets.token_hex(4)}"
    env = _env(counted, prefix, tmp_path / "cache")
    src = tmp_path / "src"
    src.mkdir()
    (src / "random.bin").write_bytes(os.urandom(1536 << 10))
    (src / "text.txt").write_text("limited\n" * 1000)
    vault.ok("init", env=env)

    traffic.clear()
    started = time.monotonic()
    done = vault.json("--limit-upload", "256", "backup", src, env=env)
    elapsed = time.monotonic() - started
    assert done.code == 0, done.last
    sent = traffic.sent()
    # one second of burst (256 KiB), the rest at 256 KiB/s: a lower bound only
    assert sent > 1536 << 10
    assert elapsed >= (sent - (256 << 10)) / (256 << 10) - 1.0

    target = tmp_path / "out"
    restored = vault.json("--limit-download", "512", "restore", "latest", "--target",
                          target, env=env)
    assert restored.code == 0, restored.last
    fs.assert_same_tree(src, fs.restored_path(target, src))


def test_an_unusable_cache_dir_costs_speed_not_the_command(
    vault, counted: tuple[S3Server, str, Traffic], tmp_path: Path
) -> None:
    prefix = f"nocache-{secrets.token_hex(4)}"
    env = _env(counted, prefix, tmp_path / "cache")
    src = tmp_path / "src"
    _many_files(src, dirs=1, files=5)
    vault.ok("init", env=env)
    snapshot = vault.backup(src, env=env)["snapshot_id"]
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory should be\n")

    listed = vault.run("snapshots", env={**env, "XDG_CACHE_HOME": str(blocked)})
    assert listed.returncode == 0, listed.stderr
    assert snapshot[:8] in listed.stdout
    assert "the metadata cache is not used" in listed.stderr
    assert blocked.read_text() == "a file where the cache directory should be\n"


def test_verify_reads_the_repository_not_the_cache(
    vault, counted: tuple[S3Server, str, Traffic], tmp_path: Path
) -> None:
    import obstore
    from obstore.store import S3Store

    server = counted[0]
    prefix = f"verify-{secrets.token_hex(4)}"
    env = _env(counted, prefix, tmp_path / "cache")
    src = tmp_path / "src"
    _many_files(src, dirs=2, files=10)
    vault.ok("init", env=env)
    vault.backup(src, env=env)
    assert vault.json("verify", env=env).code == 0  # fills the cache (read through)
    store = S3Store(BUCKET, prefix=prefix, endpoint=server.endpoint, region="us-east-1",
                    access_key_id=server.access_key, secret_access_key=server.secret_key,
                    virtual_hosted_style_request=False, client_options={"allow_http": True})
    (index_name,) = [n.split("/")[-1] for n in _keys(counted, prefix, "index/")]
    key = f"index/{index_name}"
    damaged = bytearray(bytes(obstore.get(store, key).bytes()))
    damaged[40] ^= 0x01
    obstore.put(store, key, bytes(damaged))

    assert vault.json("snapshots", env=env).code == 0  # everyday reads: the cached copy
    verified = vault.json("verify", env=env)
    assert verified.code != 0
    assert any("index" in p for p in verified.summary["problems"]), verified.summary
