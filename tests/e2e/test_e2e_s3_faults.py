"""The whole CLI against a real S3 server (moto) that misbehaves: a proxy in front of it
(tests/s3_fault_proxy.py) answers 503s, drops connections in the middle of an upload or a
download, delays listings, serves a truncated object or refuses every write. A backup
rides out what passes and fails clearly on what does not; nothing committed is lost and
nothing is silently corrupted."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from s3_fault_proxy import Faults, fault_proxy
from storage_servers import BUCKET, S3Server, moto_missing, moto_s3

MiB = 1 << 20
ALL_METHODS = ("PUT", "GET", "HEAD", "DELETE", "POST")


@pytest.fixture(scope="module")
def moto() -> Iterator[S3Server]:
    missing = moto_missing()
    if missing is not None:
        pytest.skip(missing)
    with moto_s3() as server:
        yield server


@dataclass(frozen=True)
class FaultyS3:
    """A fresh repository prefix on moto, reached through the fault proxy."""

    server: S3Server
    prefix: str
    env: dict[str, str]
    faults: Faults

    def keys(self, under: str = "") -> list[str]:
        """The keys under the prefix, asked of moto directly (never through the proxy)."""
        store = S3Store(BUCKET, prefix=self.prefix, endpoint=self.server.endpoint,
                        region="us-east-1", access_key_id=self.server.access_key,
                        secret_access_key=self.server.secret_key,
                        virtual_hosted_style_request=False,
                        client_options={"allow_http": True})
        return sorted(str(meta["path"]) for chunk in obstore.list(store, under or None)
                      for meta in chunk)


@pytest.fixture
def s3(moto: S3Server) -> Iterator[FaultyS3]:
    prefix = f"faults-{secrets.token_hex(4)}"
    with fault_proxy(moto.endpoint) as (endpoint, faults):
        env = {**moto.env(), "AWS_ENDPOINT_URL": endpoint,
               "VAULT_REPOSITORY": f"s3://{BUCKET}/{prefix}"}
        yield FaultyS3(moto, prefix, env, faults)


def _source(fs, src: Path) -> None:
    """~40 MB: three packs' worth of random data (multipart uploads) and some text."""
    for i in range(3):
        fs.write_random(src / "random" / f"r{i}.bin", 12 * MiB, seed=i)
    fs.write_compressible(src / "text" / "t.log", 4 * MiB, seed=7)
    (src / "small.txt").write_text("small\n")


def _verify_clean(vault, env: dict[str, str]) -> None:
    verified = vault.json("verify", "--read-data", env=env)
    assert verified.code == 0, (verified.last, verified.stderr)
    assert verified.summary["ok"] is True and verified.summary["problems"] == []


def test_backup_and_restore_ride_out_503s_and_dropped_connections(
        vault, fs, s3: FaultyS3, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _source(fs, src)
    vault.ok("init", env=s3.env)

    s3.faults.answer_503(12, methods=ALL_METHODS, every=3)
    s3.faults.drop_uploads(4, after=256 * 1024, every=2)
    done = vault.backup(src, env=s3.env)
    assert done["status"] == "completed" and done["problems"] == []
    bitten = dict(s3.faults.injected)
    assert s3.faults.errors_left == 0 and s3.faults.drops_left == 0, bitten
    assert bitten["dropped upload"] == 4, bitten

    s3.faults.recover()
    s3.faults.injected.clear()
    s3.faults.answer_503(8, methods=("GET", "HEAD"), every=3)
    s3.faults.cut_downloads(3, keep=100 * 1024)
    target = tmp_path / "out"
    vault.restore("latest", "--target", target, env=s3.env)
    fs.assert_same_tree(src, fs.restored_path(target, src))
    assert s3.faults.injected["cut download"] == 3, dict(s3.faults.injected)
    assert s3.faults.errors_left == 0, dict(s3.faults.injected)

    s3.faults.recover()
    _verify_clean(vault, s3.env)
    assert not s3.keys("locks")
