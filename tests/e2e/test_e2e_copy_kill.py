"""kill -9 of `vault copy` at each step whose order makes it crash-safe: packs stored but
not indexed, everything stored but no snapshot, the first snapshot saved. The same copy run
again completes: each snapshot is in the destination exactly once, verify --read-data exits
0, and every copy restores byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from copy_helpers import ENV, Repo, summary, write_config

MiB = 1 << 20

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("point", ["saver:pack-written@2", "copy:data-written",
                                   "copy:snapshot-saved"])
def test_copy_killed_then_rerun_completes(vault, fs, tmp_path: Path, point: str) -> None:
    config = write_config(tmp_path, [
        Repo("local", str(tmp_path / "local"), "pass-local", "chunk_avg_kib = 128"),
        Repo("offsite", str(tmp_path / "offsite"), "pass-offsite",
             "chunk_avg_kib = 512\npack_size_mib = 4"),
    ])

    def cli(*args: object, **kwargs: object):
        return vault.json("--config", config, *args, env={**ENV, **kwargs.pop("env", {})},
                          **kwargs)

    src = tmp_path / "src"
    src.mkdir()
    summary(cli("init"))
    summary(cli("-r", "offsite", "init"))
    fs.write_random(src / "one.bin", 9 * MiB, seed=5)
    first = summary(cli("backup", src))["snapshot_id"]
    restored_first = tmp_path / "first"
    summary(cli("restore", first, "--target", restored_first))
    fs.write_random(src / "two.bin", 5 * MiB, seed=6)
    second = summary(cli("backup", src))["snapshot_id"]

    killed = vault.run("--config", config, "copy", "--all", "--to", "offsite",
                       env={**ENV, "VAULT_FAILPOINTS": point})
    assert killed.returncode == -9, (point, killed.stdout, killed.stderr)
    assert [e["type"] for e in vault.events("CopyRequested", "CopyCompleted")] == \
        ["CopyRequested"]

    rerun = summary(cli("copy", "--all", "--to", "offsite"))
    listed = summary(cli("-r", "offsite", "snapshots"))["snapshots"]
    assert len(listed) == 2  # never a second copy of one snapshot
    done = {c["snapshot_id"] for c in rerun["copied"]} | \
        {s["snapshot_id"] for s in rerun["skipped"]}
    assert done == {first, second}
    if point == "copy:snapshot-saved":
        assert [s["snapshot_id"] for s in rerun["skipped"]] == [first]
    # the journal knows every copy, also one the killed process saved but never journaled
    recorded = {e["payload"]["to_snapshot_id"] for e in vault.events("SnapshotCopied")}
    assert recorded == {s["id"] for s in listed}
    assert cli("-r", "offsite", "verify", "--read-data").code == 0

    latest = tmp_path / "latest"
    summary(cli("-r", "offsite", "restore", "latest", "--target", latest))
    fs.assert_same_tree(src, fs.restored_path(latest, src))
    copy_of_first = min(listed, key=lambda s: s["time"])["id"]  # copies keep the time
    older = tmp_path / "older"
    summary(cli("-r", "offsite", "restore", copy_of_first, "--target", older))
    assert fs.dir_digest(fs.restored_path(older, src)) == \
        fs.dir_digest(fs.restored_path(restored_first, src))
