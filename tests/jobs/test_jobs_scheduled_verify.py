"""A verify-only schedule, run by a real worker, finds a flipped byte, records the damage
and sends a failure notice to the configured webhook."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_jobs_notify import hook  # noqa: F401  (the webhook fixture)

from vault.jobs.schedules import verify_subset


def _flip_byte_in_largest_pack(repo: Path) -> None:
    pack = max((p for p in (repo / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    pack.chmod(0o600)
    with open(pack, "r+b") as f:
        f.seek(pack.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))


def test_rotate_reads_a_different_share_each_day_and_all_of_them_in_t_days() -> None:
    days = [datetime(2026, 12, d, 3, tzinfo=UTC) for d in range(1, 31)]
    assert sorted(verify_subset("rotate/30", d) for d in days) == sorted(
        f"{n}/30" for n in range(1, 31))
    assert verify_subset("10%", days[0]) == "10%" and verify_subset(None, days[0]) is None


def test_a_scheduled_verify_reports_damage(vault_repo: Any, tmp_path: Path, fs: Any,
                                           hook: Any) -> None:  # noqa: F811
    url, received = hook
    src = tmp_path / "src"
    fs.write_random(src / "big.bin", 3 << 20, seed=3)
    snapshot_id = vault_repo.backup(src)["snapshot_id"]
    _flip_byte_in_largest_pack(vault_repo.env.repo)
    config = tmp_path / "vault.toml"
    config.write_text(f"""
[[schedules]]
name = "check"
cron = "0 4 * * *"
backup = false
verify = true
read_data_subset = "rotate/1"
notify = ["ops"]

[[notifications]]
type = "webhook"
name = "ops"
url = "{url}"
on = ["failure"]
""")
    listed = vault_repo.json("--config", config, "schedule", "list").summary["schedules"]
    assert [(s["name"], s["backup"], s["verify"]) for s in listed] == [
        ("check", False, "rotate/1")]
    worker = vault_repo.popen("--config", config, "worker", "--schedule-every", "0.5",
                              stderr=subprocess.DEVNULL)
    try:
        assert vault_repo.json("--config", config, "schedule", "run", "check").code == 0
        deadline = time.monotonic() + 90
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    [run] = vault_repo.events("ScheduleRunQueued")
    assert run["payload"]["sources"] == [] and len(run["payload"]["job_ids"]) == 1
    [verified] = vault_repo.events("VerifyCompleted")
    assert verified["payload"]["ok"] is False
    [corrupted] = vault_repo.events("SnapshotCorrupted")
    assert corrupted["payload"]["snapshot_id"] == snapshot_id
    [notice] = received
    assert notice["trigger"] == "failure" and notice["schedule"] == "check"
    assert "found damage" in notice["title"]
    # The damage is remembered: the snapshot lists as corrupted, the status alerts.
    [shown] = vault_repo.json("snapshots").summary["snapshots"]
    assert shown["status"] == "corrupted"
    assert vault_repo.run("status", "--check").returncode == 1


@pytest.mark.parametrize("bad", [
    'backup = false',  # does nothing
    'verify = true\nread_data_subset = "every other"',
    'read_data_subset = "1/2"',  # without verify
])
def test_a_schedule_that_cannot_verify_is_refused(vault_repo: Any, tmp_path: Path,
                                                  bad: str) -> None:
    config = tmp_path / "vault.toml"
    config.write_text(f'[[schedules]]\nname = "x"\ncron = "0 4 * * *"\n{bad}\n')
    done = vault_repo.run("--config", config, "config", "check")
    assert done.returncode == 2, done.stdout + done.stderr


def test_a_schedule_due_while_no_worker_runs_is_an_alert(vault_repo: Any, tmp_path: Path,
                                                          fs: Any) -> None:
    from datetime import timedelta

    from test_jobs_schedules import files_config, journal_as_added_at, write_config
    from test_jobs_worker import Workers

    src = tmp_path / "src"
    fs.write_random(src / "a.bin", 10_000, seed=1)
    now = datetime.now(UTC)
    due = (now - timedelta(minutes=10)).replace(second=0, microsecond=0)
    write_config(vault_repo, files_config(src, f"""
[[schedules]]
name = "nightly"
cron = "{due.minute} {due.hour} * * *"
sources = ["docs"]
"""))
    journal_as_added_at(vault_repo, "nightly", now - timedelta(minutes=30))
    status = vault_repo.json("status", "--check")
    assert status.code == 1
    [alert] = [a for a in status.summary["alerts"] if a["kind"] == "schedule_due_no_worker"]
    assert alert["subject"] == "nightly" and "vault worker" in alert["message"]

    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(vault_repo, logs)
    try:
        workers.start("--schedule-every", "0.5")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not vault_repo.events("ScheduleRunCompleted"):
            time.sleep(0.3)
        kinds = {a["kind"] for a in vault_repo.json("status").summary["alerts"]}
        assert "schedule_due_no_worker" not in kinds
    finally:
        workers.stop_all()
