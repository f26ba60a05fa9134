"""A schedule's `copy_to`, run by a real worker: after each run its new snapshot is copied
into the off-site repository (and restores from there byte-identical), each repository
keeps its own retention, and `vault status` shows the newest snapshot of each source in
every configured repository."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from copy_helpers import ENV, Repo, summary, write_config

MiB = 1 << 20


def _wait_for(vault: Any, config: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = vault.query("--config", config, "journal", "--type", "CopyCompleted",
                           env=ENV).summary["events"]
        if len(done) >= count:
            return list(done)
        time.sleep(0.3)
    raise AssertionError(f"no {count} CopyCompleted within 120 s")


def test_copy_to_after_each_scheduled_run(vault: Any, fs: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    fs.write_random(src / "data.bin", 2 * MiB, seed=4)
    config = write_config(tmp_path, [
        Repo("local", str(tmp_path / "local"), "pass-local"),
        Repo("offsite", str(tmp_path / "offsite"), "pass-offsite", "chunk_avg_kib = 512"),
    ])
    config.write_text(config.read_text() + f"""
[[sources]]
type = "files"
name = "docs"
paths = ["{src}"]

[[schedules]]
name = "nightly"
cron = "0 3 * * *"
sources = ["docs"]
copy_to = ["offsite"]
""")

    def cli(*args: Any) -> Any:
        return vault.json("--config", config, *args, env=ENV)

    for name in ("VAULT_REPOSITORY", "VAULT_PASSWORD"):  # the worker's too: no popen env
        vault.env.env.pop(name, None)
    summary(cli("init"))
    summary(cli("-r", "offsite", "init"))
    worker = vault.popen("--config", config, "worker", "--schedule-every", "0.5",
                         stderr=subprocess.DEVNULL)
    try:
        summary(cli("schedule", "run", "nightly"))
        [first] = _wait_for(vault, config, 1)
        fs.write_random(src / "more.bin", 1 * MiB, seed=5)
        summary(cli("schedule", "run", "nightly"))
        second = _wait_for(vault, config, 2)[-1]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert first["payload"]["copied"] == 1 and first["payload"]["failed"] == []
    # the second run copies its own snapshot; the first one's is not even looked at
    assert (second["payload"]["copied"], second["payload"]["skipped"]) == (1, 1)

    local = summary(cli("snapshots"))["snapshots"]
    offsite = summary(cli("-r", "offsite", "snapshots"))["snapshots"]
    assert len(local) == len(offsite) == 2
    target = tmp_path / "out"
    summary(cli("-r", "offsite", "restore", "latest", "--target", target))
    fs.assert_same_tree(src, fs.restored_path(target, src))

    # each repository keeps its own retention: forgetting off-site leaves local alone
    oldest = min(offsite, key=lambda s: s["time"])["id"]
    summary(cli("-r", "offsite", "forget", oldest))
    assert len(summary(cli("snapshots"))["snapshots"]) == 2

    status = summary(cli("status"))
    by_name = {r["name"]: r for r in status["repositories"]}
    assert set(by_name) == {"local", "offsite"}
    assert by_name["offsite"]["error"] is None
    [newest] = by_name["offsite"]["sources"]
    assert newest["source"] == "docs" and newest["snapshot_id"] == max(
        offsite, key=lambda s: s["time"])["id"]
    assert newest["age_seconds"] >= 0


def test_schedule_add_copy_to_names_a_configured_repository(vault: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, [
        Repo("local", str(tmp_path / "local"), "pass-local"),
        Repo("offsite", str(tmp_path / "offsite"), "pass-offsite"),
    ])

    def cli(*args: Any) -> Any:
        return vault.json("--config", config, *args, env=ENV)

    added = summary(cli("schedule", "add", "nightly", "--cron", "daily", "--copy-to",
                        "offsite"))
    assert added["schedule"]["name"] == "nightly"
    [event] = vault.events("ScheduleAdded")
    assert event["payload"]["definition"]["copy_to"] == ["offsite"]
    refused = cli("schedule", "add", "other", "--cron", "daily", "--copy-to", "nas")
    assert refused.code == 2 and refused.last["message"] == (
        "--copy-to 'nas': no such repository in the configuration (configured "
        "[[repositories]]: local, offsite)")
