"""What `vault status` shows, decided from plain data: the last backup of each source and
the alerts. Pure: the rows come from the journal's projections (vault.operations.status
reads them), `now` is a parameter, nothing here reads the clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vault.foundation.worker_presence import WorkerPresence
from vault.planning.quota import StorageUsage

#: a running job that journaled nothing (no progress) for this long is probably dead
STALE_AFTER = timedelta(minutes=15)
#: a queued job no worker took for this long means no worker is running
WAITING_AFTER = timedelta(minutes=30)
#: missed schedule runs older than this no longer raise an alert
MISSED_WINDOW = timedelta(days=7)

_FINISHED = ("completed", "partial", "failed", "interrupted")


@dataclass(frozen=True)
class BackupAttempt:
    """One finished backup job, with what it backed up and, if it saved one, its snapshot."""

    job_id: str
    label: str
    source_type: str
    status: str  # completed | partial | failed | interrupted
    finished_at: datetime
    snapshot_id: str | None = None
    bytes_raw: int | None = None
    bytes_new: int | None = None
    problems: int = 0
    error: str | None = None


@dataclass(frozen=True)
class SourceState:
    """The newest backup attempt of one source, and its newest snapshot if that failed."""

    last: BackupAttempt
    last_snapshot: BackupAttempt | None

    @property
    def label(self) -> str:
        return self.last.label


@dataclass(frozen=True)
class ActiveJob:
    job_id: str
    kind: str
    status: str  # requested | queued | running
    label: str | None
    since: datetime | None  # requested (or started) at
    last_event_at: datetime | None
    phase: str | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    items_done: int | None = None
    items_total: int | None = None
    eta_seconds: float | None = None
    rate_bps: float | None = None

    @property
    def percent(self) -> float | None:
        if not self.bytes_total or self.bytes_done is None:
            return None
        return min(100.0, 100.0 * self.bytes_done / self.bytes_total)


@dataclass(frozen=True)
class MissedRun:
    """A schedule run the scheduler reported missed (a `ScheduleRunMissed` event)."""

    schedule: str
    due_at: str | None  # the newest missed due time
    count: int
    recorded_at: datetime


@dataclass(frozen=True)
class Alert:
    kind: str  # backup_failed, backup_interrupted, snapshot_partial, storage_low, ...
    subject: str
    message: str


def last_per_source(attempts: Iterable[BackupAttempt]) -> list[SourceState]:
    """The newest attempt of each (source type, label), sorted by label; a source whose
    newest attempt saved no snapshot also gets its newest attempt that did."""
    newest: dict[tuple[str, str], BackupAttempt] = {}
    newest_snapshot: dict[tuple[str, str], BackupAttempt] = {}
    for attempt in sorted(attempts, key=lambda a: a.finished_at):
        if attempt.status not in _FINISHED:
            continue
        key = (attempt.source_type, attempt.label)
        newest[key] = attempt
        if attempt.snapshot_id is not None:
            newest_snapshot[key] = attempt
    states = [SourceState(last, None if last.snapshot_id else newest_snapshot.get(key))
              for key, last in newest.items()]
    return sorted(states, key=lambda s: (s.label, s.last.source_type))


def format_age(delta: timedelta) -> str:
    """A short age: 45s, 12m, 5h, 3d (a negative delta, from clock skew, is 0s)."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def storage_alerts(usage: StorageUsage | None) -> list[Alert]:
    """Low storage by the current usage (the StorageLow event that marked the crossing
    may be older than a quota change)."""
    if usage is None or not usage.low:
        return []
    assert usage.quota is not None and usage.percent is not None
    over = usage.used > usage.quota
    state = "over the quota" if over else f"above the {usage.warn_percent:g}% warning level"
    return [Alert("storage_low", "repository",
                  f"storage {usage.percent:.0f}% of the quota used ({state}): "
                  "forget old snapshots and prune, or raise repository.quota")]


def source_alerts(sources: Iterable[SourceState], now: datetime) -> list[Alert]:
    found: list[Alert] = []
    for state in sources:
        last = state.last
        age = format_age(now - last.finished_at)
        if last.status == "failed":
            found.append(Alert("backup_failed", last.label,
                               f"{last.label}: backup failed {age} ago: {last.error}"))
        elif last.status == "interrupted":
            found.append(Alert("backup_interrupted", last.label,
                               f"{last.label}: backup interrupted {age} ago: {last.error}"))
        elif last.status == "partial":
            found.append(Alert("snapshot_partial", last.label,
                               f"{last.label}: snapshot {(last.snapshot_id or '')[:8]} "
                               f"({age} ago) is partial: {last.problems} item(s) unreadable"))
    return found


def job_alerts(jobs: Iterable[ActiveJob], now: datetime) -> list[Alert]:
    found: list[Alert] = []
    for job in jobs:
        quiet = now - job.last_event_at if job.last_event_at else None
        if job.status == "queued" and quiet is not None and quiet > WAITING_AFTER:
            found.append(Alert("job_waiting", job.job_id,
                               f"{job.job_id} queued {format_age(quiet)} ago and no worker "
                               "took it (is `vault worker` running?)"))
        elif job.status != "queued" and quiet is not None and quiet > STALE_AFTER:
            found.append(Alert("job_stale", job.job_id,
                               f"{job.job_id} ({job.status}) has journaled nothing for "
                               f"{format_age(quiet)}: its process may have died"))
    return found


def missed_alerts(missed: Iterable[MissedRun], now: datetime) -> list[Alert]:
    recent = [m for m in missed if now - m.recorded_at <= MISSED_WINDOW]
    by_schedule: dict[str, list[MissedRun]] = {}
    for run in recent:
        by_schedule.setdefault(run.schedule, []).append(run)
    return [Alert("schedule_missed", name,
                  f"schedule {name}: {sum(r.count for r in runs)} run(s) missed in the last "
                  f"{MISSED_WINDOW.days} days (newest due {max(r.due_at or '?' for r in runs)})")
            for name, runs in sorted(by_schedule.items())]


def all_alerts(sources: list[SourceState], jobs: list[ActiveJob], usage: StorageUsage | None,
               missed: list[MissedRun], now: datetime) -> list[Alert]:
    """Everything that needs a person's attention, most urgent kinds first."""
    return (storage_alerts(usage) + source_alerts(sources, now)
            + job_alerts(jobs, now) + missed_alerts(missed, now))


def worker_summary(workers: Iterable[WorkerPresence], jobs: Iterable[ActiveJob]) -> str:
    """One line: the running workers, or that none runs and how many jobs wait for one."""
    running = list(workers)
    if not running:
        waiting = sum(1 for job in jobs if job.status != "running")
        return "none running" + (f" ({waiting} queued job(s) wait for `vault worker`)"
                                 if waiting else "")
    return ", ".join(f"{w.name} ({w.threads} thread(s), {w.queue})" for w in running)


@dataclass(frozen=True)
class VerifyState:
    """The journal's view of verification, for the alerts (see journal.queries)."""

    last_at: datetime | None = None
    last_ok: bool = True
    last_problems: int = 0
    last_ok_at: datetime | None = None
    damaged: dict[str, list[str]] = field(default_factory=dict)  # snapshot id -> paths
    first_backup_at: datetime | None = None


def verify_alerts(state: VerifyState, max_age: timedelta, now: datetime) -> list[Alert]:
    """Damage the newest verify found, and a verify that is overdue."""
    found: list[Alert] = []
    age = format_age(now - state.last_at) if state.last_at else ""
    if state.damaged:
        ids = ", ".join(sorted(s[:8] for s in state.damaged)[:5])
        found.append(Alert("snapshots_damaged", "repository",
                           f"{len(state.damaged)} snapshot(s) damaged ({ids}), last verify "
                           f"{age} ago: run `vault repair` (docs/repair.md)"))
    elif state.last_at is not None and not state.last_ok:
        found.append(Alert("repository_damaged", "repository",
                           f"the last verify ({age} ago) found {state.last_problems} "
                           "problem(s): run `vault verify` to see them, then `vault repair`"))
    since = state.last_ok_at or state.first_backup_at
    if since is not None and now - since > max_age:
        what = (f"no successful verify for {format_age(now - since)}" if state.last_ok_at
                else f"never verified (first backup {format_age(now - since)} ago)")
        found.append(Alert("verify_overdue", "repository",
                           f"{what}, more than [verify] max_age "
                           f"{format_age(max_age)}: run `vault verify --read-data-subset`"))
    return found


@dataclass(frozen=True)
class OverdueSchedule:
    """A schedule whose due time passed without a run (see `overdue_alerts`)."""

    name: str
    due_at: datetime


#: a due run not queued after this long is overdue (a worker ticks every few seconds)
OVERDUE_AFTER = timedelta(minutes=2)


def overdue_alerts(overdue: Iterable[OverdueSchedule], workers_running: int,
                   now: datetime) -> list[Alert]:
    """Schedules due while no worker runs: nothing will back them up until one starts."""
    if workers_running:
        return []
    return [Alert("schedule_due_no_worker", item.name,
                  f"schedule {item.name} was due {format_age(now - item.due_at)} ago and no "
                  "worker runs: start `vault worker`")
            for item in overdue if now - item.due_at > OVERDUE_AFTER]
