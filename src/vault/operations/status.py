"""`vault status`: gather what the dashboard shows from the repository's plain objects
and the journal. Needs no passphrase and takes no lock, so monitoring can run it.

The decisions (last backup per source, alerts) are vault.planning.status_report's pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.errors import RepositoryNotFound
from vault.foundation.worker_presence import WorkerPresence, live_workers
from vault.journal.chain import format_time
from vault.journal.queries import (
    backup_jobs,
    events_of_type,
    other_active_jobs,
    parse_time,
    verify_history,
)
from vault.operations.journal_check import journal_alerts
from vault.operations.quota import last_storage_event, storage_usage
from vault.operations.repository_holdings import RepositoryHoldings, repository_holdings
from vault.planning.quota import StorageUsage
from vault.planning.schedule_due import ScheduleState, UpcomingRun, upcoming
from vault.planning.status_report import (
    MISSED_WINDOW,
    ActiveJob,
    Alert,
    BackupAttempt,
    MissedRun,
    OverdueSchedule,
    SourceState,
    VerifyState,
    all_alerts,
    last_per_source,
    overdue_alerts,
    verify_alerts,
)
from vault.repository.repository import read_config
from vault.runtime.app import Vault

#: how many upcoming scheduled runs the dashboard lists
NEXT_RUNS = 5


@dataclass
class StatusReport:
    repository: str
    initialised: bool
    journal_path: str
    journal_events: int
    repo_id: str | None = None
    format_version: int | None = None
    snapshots: int | None = None
    usage: StorageUsage | None = None
    storage_low_journaled: bool = False
    sources: list[SourceState] = field(default_factory=list)
    jobs: list[ActiveJob] = field(default_factory=list)
    next_runs: list[UpcomingRun] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    workers: list[WorkerPresence] = field(default_factory=list)  # running `vault worker`s
    verify: VerifyState = field(default_factory=VerifyState)
    #: each `[[repositories]]` entry and the newest snapshot of each source in it
    repositories: list[RepositoryHoldings] = field(default_factory=list)


def schedule_states(vault: Vault, now: datetime) -> list[ScheduleState]:
    """The schedules whose next runs the dashboard shows: vault.toml's and those added
    with `vault schedule add`, with their pause state and last run from the journal."""
    from vault.runtime.effective_schedules import read_schedules

    return [ScheduleState(name=view.name, cron=view.cron, timezone=view.timezone,
                          paused=view.paused, catch_up=view.catch_up,
                          last_run_at=view.last_run_at, created_at=now)
            for view in read_schedules(vault.config, vault.journal, now)]


def gather_status(vault: Vault, now: datetime) -> StatusReport:
    journal_path = vault.config.journal_path()
    report = StatusReport(repository=vault.storage.location, initialised=False,
                          journal_path=str(journal_path),
                          journal_events=vault.journal.head_seq())
    report.next_runs = upcoming(schedule_states(vault, now), now, NEXT_RUNS)
    report.workers = live_workers(vault.config.resolved_state_dir(), now)
    report.repositories = repository_holdings(vault)
    try:
        config = read_config(vault.storage)
    except RepositoryNotFound:
        return report
    report.initialised = True
    report.repo_id, report.format_version = str(config["id"]), int(config["version"])
    report.snapshots = sum(1 for _ in vault.storage.list("snapshots"))
    report.usage = storage_usage(vault, vault.storage, report.repo_id)  # remembered figures
    report.storage_low_journaled = last_storage_event(vault, report.repo_id) == "StorageLow"
    mine = _this_repository(report.repository)
    report.sources = last_per_source(
        _attempt(row) for row in backup_jobs(journal_path, active=False) if mine(row))
    report.jobs = [_active(row) for row in backup_jobs(journal_path, active=True) if mine(row)]
    report.jobs += [_active(row) for row in other_active_jobs(journal_path) if mine(row)]
    missed = _missed_runs(vault, now)
    report.verify = _verify_state(journal_path, report.repo_id)
    report.alerts = (all_alerts(report.sources, report.jobs, report.usage, missed, now)
                     + verify_alerts(report.verify, vault.config.verify.max_age, now)
                     + overdue_alerts(_overdue_schedules(vault, now), len(report.workers),
                                      now))
    report.alerts += journal_alerts(vault, report.repo_id, now)
    return report


def _overdue_schedules(vault: Vault, now: datetime) -> list[OverdueSchedule]:
    """Active schedules whose next due time after their last run (or their start) has
    passed: a worker would have queued them."""
    from vault.journal.projections.schedules import read_schedule_rows
    from vault.planning.schedule_due import next_run
    from vault.runtime.effective_schedules import effective_schedules

    found = []
    for item in effective_schedules(vault.config, read_schedule_rows(vault.config.journal_path()),
                                    now):
        if item.schedule.paused:
            continue
        due = next_run(item.schedule.cron, item.schedule.timezone,
                       item.last_due or item.created_at)
        if due <= now:
            found.append(OverdueSchedule(item.schedule.name, due))
    return found


def _verify_state(journal_path: Path, repo_id: str) -> VerifyState:
    seen = verify_history(journal_path, repo_id)
    last, last_ok = seen["last"], seen["last_ok"]
    return VerifyState(
        last_at=parse_time(last["recorded_at"]) if last else None,
        last_ok=bool(last["payload"]["ok"]) if last else True,
        last_problems=len(last["payload"]["problems"]) if last else 0,
        last_ok_at=parse_time(last_ok["recorded_at"]) if last_ok else None,
        damaged=seen["damaged"], first_backup_at=parse_time(seen["first_backup_at"]))


def _this_repository(location: str) -> Callable[[dict[str, Any]], bool]:
    # A journal may have served several repositories (`-r`); a job names its own.
    return lambda row: row.get("repository") in (None, location)


def _label(row: dict[str, Any]) -> str:
    request = row["request"]
    if request.get("source"):
        return str(request["source"])
    if request.get("paths"):
        return " ".join(request["paths"])
    if row.get("snapshot_source"):
        return str(row["snapshot_source"])
    if row.get("snapshot_paths"):
        return " ".join(json.loads(row["snapshot_paths"]))
    return str(row["job_id"])


def _source_type(row: dict[str, Any]) -> str:
    return str(row["request"].get("source_type") or row.get("snapshot_source_type")
               or "files")


def _attempt(row: dict[str, Any]) -> BackupAttempt:
    finished = parse_time(row["finished_at"] or row["last_event_at"])
    assert finished is not None
    return BackupAttempt(
        job_id=row["job_id"], label=_label(row), source_type=_source_type(row),
        status=row["status"], finished_at=finished, snapshot_id=row["snapshot_id"],
        bytes_raw=row["snapshot_bytes_raw"], bytes_new=row["snapshot_bytes_new"],
        problems=int(row["problems"] or 0), error=row["error_message"])


def _active(row: dict[str, Any]) -> ActiveJob:
    label = _label(row) if "request" in row else None
    return ActiveJob(
        job_id=row["job_id"], kind=row["kind"], status=row["status"], label=label,
        since=parse_time(row["started_at"] or row["requested_at"]),
        last_event_at=parse_time(row["last_event_at"]), phase=row["phase"],
        bytes_done=row["bytes_done"], bytes_total=row["bytes_total"],
        items_done=row["items_done"], items_total=row["items_total"],
        eta_seconds=row["eta_seconds"], rate_bps=row.get("rate_bps"))


def _missed_runs(vault: Vault, now: datetime) -> list[MissedRun]:
    """`ScheduleRunMissed` events of the last week, matched by type name so this works
    whether or not this vault defines the event class."""
    rows = events_of_type(vault.config.journal_path(), "ScheduleRunMissed",
                          since=format_time(now - MISSED_WINDOW))
    found = []
    for row in rows:
        payload = row["payload"]
        recorded = parse_time(row["recorded_at"])
        assert recorded is not None
        found.append(MissedRun(
            schedule=str(payload.get("name") or payload.get("schedule") or row["stream_id"]),
            due_at=payload.get("last_due"), count=int(payload.get("missed_count") or 1),
            recorded_at=recorded))
    return found
