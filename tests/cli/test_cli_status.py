"""`vault status`: last backup per source (a failed one too), a running job with its
progress, storage against the quota, next runs of a configured schedule, and alerts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vault.journal import Journal
from vault.journal import events as ev


def configure(vault, db: Path, docs: Path) -> None:
    path = vault.env.home / "config" / "vault" / "vault.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'''
[repository]
quota = "100M"
warn_at = "90%"

[[sources]]
type = "sqlite"
name = "appdb"
path = "{db}"

[[sources]]
type = "files"
name = "docs"
paths = ["{docs}"]

[[schedules]]
name = "nightly"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
''')


def journal_a_running_job(vault, repository: Path) -> str:
    """A job as a worker in another process journals it: requested, started, progress."""
    job_id = "backup-0123456789abcdef"
    with Journal(vault.env.journal_path) as journal:
        journal.append(job_id, ev.BackupRequested(
            job_id=job_id, repository=str(repository), paths=["big-db"], tags=[], options={},
            source_type="postgresql", source="big-db"))
        journal.append(job_id, ev.BackupStarted(job_id=job_id, repo_id="r", parent=None))
        journal.append(job_id, ev.BackupProgressed(
            job_id=job_id, phase="backup", bytes_done=300, bytes_total=1200, items_done=1,
            items_total=4, rate_bps=100.0, eta_seconds=9.0))
    return job_id


def journal_a_missed_run(vault) -> None:
    """A ScheduleRunMissed event, defined here only if this vault has no such class yet
    (status matches the type by name, so it must work either way)."""
    existing = ev.EVENT_TYPES.get("ScheduleRunMissed")
    if existing is None:
        class ScheduleRunMissed(ev.Event):
            name: str
            missed: list[str]
            missed_count: int
            caught_up: bool
            last_due: str

        existing = ScheduleRunMissed
    try:
        event = existing(name="nightly", missed=["2026-01-01T02:00:00Z"], missed_count=2,
                         caught_up=True, last_due="2026-01-02T02:00:00Z")
        with Journal(vault.env.journal_path) as journal:
            journal.append("schedule-nightly", event)
    finally:
        if existing.__module__ == __name__:
            del ev.EVENT_TYPES["ScheduleRunMissed"]  # leave the registry as it was


def test_status_dashboard(vault_repo, fs, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    fs.write_random(docs / "a.bin", 200_000, seed=5)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    configure(vault_repo, db, docs)
    vault_repo.backup("--source", "docs")
    vault_repo.backup("--source", "appdb")
    good = vault_repo.events("BackupCompleted")[-1]["payload"]["snapshot_id"]
    db.unlink()
    failed = vault_repo.json("backup", "--source", "appdb")
    assert failed.code != 0
    job_id = journal_a_running_job(vault_repo, vault_repo.env.repo)
    journal_a_missed_run(vault_repo)

    # No passphrase anywhere: status must not need one.
    result = vault_repo.json("status", env={"VAULT_PASSWORD": None})
    assert result.code == 0, result.last
    assert vault_repo.env.password not in result.stdout + result.stderr
    summary = result.summary
    assert summary["initialised"] is True and summary["snapshots"] == 2
    by_label = {s["label"]: s for s in summary["sources"]}
    assert set(by_label) == {"docs", "appdb"}
    assert by_label["docs"]["status"] == "completed"
    assert by_label["docs"]["bytes_raw"] == 200_000
    appdb = by_label["appdb"]
    assert (appdb["source_type"], appdb["status"]) == ("sqlite", "failed")
    assert str(db) in appdb["error"] and appdb["last_snapshot_id"] == good

    [job] = summary["jobs"]
    assert (job["job_id"], job["label"], job["status"]) == (job_id, "big-db", "running")
    assert (job["bytes_done"], job["bytes_total"], job["percent"]) == (300, 1200, 25.0)

    storage = summary["storage"]
    assert storage["quota_bytes"] == 100 << 20 and storage["warn_percent"] == 90.0
    assert storage["used_bytes"] == sum(
        p.stat().st_size for kind in ("data", "index", "snapshots")
        for p in (vault_repo.env.repo / kind).rglob("*") if p.is_file())
    assert storage["low"] is False

    runs = summary["next_runs"]
    assert len(runs) == 5 and {r["schedule"] for r in runs} == {"nightly"}
    # 03:00 in Berlin is 02:00 UTC in winter, 01:00 UTC in summer
    assert all(r["at"].endswith(("01:00:00+00:00", "02:00:00+00:00")) for r in runs)

    kinds = {(a["kind"], a["subject"]) for a in summary["alerts"]}
    assert kinds == {("backup_failed", "appdb"), ("schedule_missed", "nightly")}
    assert summary["alert_count"] == 2 and summary["ok"] is False
    records = {r["type"] for r in result.records}
    assert records == {"storage", "source", "job", "next_run", "alert", "summary"}

    human = vault_repo.run("status", env={"VAULT_PASSWORD": None})
    assert human.returncode == 0, human.stderr
    text = human.stdout
    assert "appdb" in text and "failed" in text and "big-db" in text and "25%" in text
    assert "of 100.0 MiB quota" in text and "nightly" in text and "alerts (2)" in text
    check = vault_repo.run("status", "--check", env={"VAULT_PASSWORD": None})
    assert check.returncode == 1


def test_status_check_is_quiet_when_all_is_well(vault_repo, fs, tmp_path: Path) -> None:
    fs.write_random(tmp_path / "src" / "a.bin", 10_000, seed=6)
    vault_repo.backup(tmp_path / "src")
    result = vault_repo.json("status", "--check")
    assert result.code == 0 and result.summary["ok"] is True
    assert result.summary["storage"]["quota_bytes"] is None
    assert result.summary["next_runs"] == [] and result.summary["jobs"] == []


def test_status_without_a_repository(vault) -> None:
    result = vault.json("status")
    assert result.code == 0 and result.summary["initialised"] is False
    assert result.summary["sources"] == [] and result.summary["storage"] is None
