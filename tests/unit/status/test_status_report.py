"""The pure side of `vault status`: last backup per source and the alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vault.planning.quota import StorageUsage
from vault.planning.status_report import (
    ActiveJob,
    BackupAttempt,
    MissedRun,
    all_alerts,
    format_age,
    last_per_source,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def attempt(label: str, status: str, minutes_ago: int, *, kind: str = "files",
            snapshot: str | None = None, error: str | None = None,
            problems: int = 0) -> BackupAttempt:
    return BackupAttempt(job_id=f"backup-{label}-{minutes_ago}", label=label, source_type=kind,
                         status=status, finished_at=NOW - timedelta(minutes=minutes_ago),
                         snapshot_id=snapshot, bytes_raw=10 if snapshot else None,
                         bytes_new=1 if snapshot else None, problems=problems, error=error)


def test_the_newest_attempt_per_source_wins_and_a_failure_keeps_the_last_good() -> None:
    states = last_per_source([
        attempt("db", "completed", 120, kind="sqlite", snapshot="aaaa"),
        attempt("db", "failed", 5, kind="sqlite", error="disk full"),
        attempt("docs", "completed", 300, snapshot="bbbb"),
        attempt("docs", "partial", 60, snapshot="cccc", problems=2),
        attempt("db", "completed", 600, kind="sqlite", snapshot="old"),
    ])
    assert [(s.label, s.last.status) for s in states] == [("db", "failed"), ("docs", "partial")]
    db, docs = states
    assert db.last.error == "disk full" and db.last_snapshot is not None
    assert db.last_snapshot.snapshot_id == "aaaa"
    assert docs.last.snapshot_id == "cccc" and docs.last_snapshot is None


def test_same_label_of_different_types_are_different_sources() -> None:
    states = last_per_source([attempt("app", "completed", 1, snapshot="x"),
                              attempt("app", "completed", 2, kind="sqlite", snapshot="y")])
    assert sorted(s.last.source_type for s in states) == ["files", "sqlite"]


def test_running_attempts_are_not_last_backups() -> None:
    assert last_per_source([attempt("db", "running", 1)]) == []


def test_format_age() -> None:
    assert [format_age(timedelta(seconds=s)) for s in (-3, 0, 59, 60, 3599, 7200, 86400 * 3)] \
        == ["0s", "0s", "59s", "1m", "59m", "2h", "3d"]


def job(status: str, quiet_minutes: int) -> ActiveJob:
    at = NOW - timedelta(minutes=quiet_minutes)
    return ActiveJob(job_id=f"backup-{status}-{quiet_minutes}", kind="backup", status=status,
                     label="db", since=at, last_event_at=at, bytes_done=50, bytes_total=200)


def test_alerts_for_every_kind() -> None:
    sources = last_per_source([
        attempt("db", "failed", 5, kind="sqlite", error="disk full"),
        attempt("docs", "partial", 60, snapshot="cccc", problems=2),
        attempt("home", "interrupted", 30, error="worker died"),
        attempt("etc", "completed", 30, snapshot="dddd"),
    ])
    jobs = [job("running", 1), job("running", 20), job("queued", 10), job("queued", 45)]
    missed = [MissedRun("nightly", "2026-03-01T02:00:00Z", 3, NOW - timedelta(hours=10)),
              MissedRun("nightly", "2026-02-01T02:00:00Z", 1, NOW - timedelta(days=28))]
    usage = StorageUsage(used=95, quota=100, warn_percent=90)
    alerts = all_alerts(sources, jobs, usage, missed, NOW)
    kinds = [(a.kind, a.subject) for a in alerts]
    assert kinds == [
        ("storage_low", "repository"),
        ("backup_failed", "db"),
        ("snapshot_partial", "docs"),
        ("backup_interrupted", "home"),
        ("job_stale", "backup-running-20"),
        ("job_waiting", "backup-queued-45"),
        ("schedule_missed", "nightly"),
    ]
    messages = {a.kind: a.message for a in alerts}
    assert messages["backup_failed"] == "db: backup failed 5m ago: disk full"
    assert "2 item(s)" in messages["snapshot_partial"]
    assert "3 run(s) missed" in messages["schedule_missed"]  # the 28-day-old one is not
    assert "95%" in messages["storage_low"]


def test_no_alerts_when_all_is_well() -> None:
    sources = last_per_source([attempt("etc", "completed", 30, snapshot="dddd")])
    usage = StorageUsage(used=10, quota=100, warn_percent=80)
    assert all_alerts(sources, [job("running", 1)], usage, [], NOW) == []
    assert all_alerts([], [], StorageUsage(used=10**12, quota=None, warn_percent=80), [],
                      NOW) == []


def test_over_the_quota_says_so() -> None:
    [alert] = all_alerts([], [], StorageUsage(used=120, quota=100, warn_percent=80), [], NOW)
    assert "over the quota" in alert.message


def test_active_job_percent() -> None:
    assert job("running", 1).percent == 25.0
    assert ActiveJob("j", "backup", "queued", None, None, None).percent is None
