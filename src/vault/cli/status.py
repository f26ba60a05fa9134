"""`vault status`: one dashboard of the repository, its sources, jobs, schedules and alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from vault.cli.main import CliState, output_options, pass_state
from vault.cli.output import Output, format_duration
from vault.foundation.units import human_bytes
from vault.operations.repository_holdings import RepositoryHoldings, newest_age_seconds
from vault.operations.status import StatusReport, gather_status
from vault.planning.quota import StorageUsage
from vault.planning.status_report import ActiveJob, SourceState, format_age, worker_summary


@click.command()
@click.option("--check", is_flag=True,
              help="Exit 1 when there is any alert (for monitoring scripts).")
@output_options
@pass_state
def status(state: CliState, check: bool) -> None:
    """Dashboard: repository, last backup per source, running jobs, next runs, storage
    against the quota, and alerts. Reads the journal; needs no passphrase."""
    vault = state.vault()
    now = datetime.now(UTC)
    report = gather_status(vault, now)
    out = state.output()
    _emit_records(out, report, now)
    _print_dashboard(out, report, now)
    out.summary(**_summary(report, now))
    if check and report.alerts:
        click.get_current_context().exit(1)


# --- JSON -------------------------------------------------------------------------------


def _source_record(s: SourceState, now: datetime) -> dict[str, Any]:
    last, good = s.last, s.last_snapshot
    return {"label": last.label, "source_type": last.source_type, "status": last.status,
            "job_id": last.job_id, "finished_at": last.finished_at,
            "age_seconds": (now - last.finished_at).total_seconds(),
            "snapshot_id": last.snapshot_id, "bytes_raw": last.bytes_raw,
            "bytes_new": last.bytes_new, "problems": last.problems, "error": last.error,
            "last_snapshot_id": good.snapshot_id if good else last.snapshot_id,
            "last_snapshot_at": good.finished_at if good else
            (last.finished_at if last.snapshot_id else None)}


def _job_record(job: ActiveJob) -> dict[str, Any]:
    return {"job_id": job.job_id, "kind": job.kind, "status": job.status, "label": job.label,
            "since": job.since, "last_event_at": job.last_event_at, "phase": job.phase,
            "bytes_done": job.bytes_done, "bytes_total": job.bytes_total,
            "items_done": job.items_done, "items_total": job.items_total,
            "percent": job.percent, "eta_seconds": job.eta_seconds}


def _storage_record(usage: StorageUsage | None, journaled_low: bool) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {"used_bytes": usage.used, "quota_bytes": usage.quota, "percent": usage.percent,
            "warn_percent": usage.warn_percent, "low": usage.low,
            "storage_low_journaled": journaled_low,
            "measured_at": usage.measured_at.isoformat() if usage.measured_at else None}


def _sections(report: StatusReport, now: datetime) -> dict[str, list[dict[str, Any]]]:
    return {
        "sources": [_source_record(s, now) for s in report.sources],
        "jobs": [_job_record(j) for j in report.jobs],
        "next_runs": [{"schedule": r.name, "at": r.at} for r in report.next_runs],
        "alerts": [{"kind": a.kind, "subject": a.subject, "message": a.message}
                   for a in report.alerts],
        "workers": [{"name": w.name, "host": w.host, "pid": w.pid,
                     "started_at": w.started_at, "beat_at": w.beat_at, "queue": w.queue,
                     "threads": w.threads} for w in report.workers],
    }


_RECORD_TYPE = {"sources": "source", "jobs": "job", "next_runs": "next_run",
                "alerts": "alert", "workers": "worker"}


def _emit_records(out: Output, report: StatusReport, now: datetime) -> None:
    """One JSON line per item of each section, before the summary."""
    if report.initialised:
        storage = _storage_record(report.usage, report.storage_low_journaled)
        out.record("storage", **(storage or {}))
    for section, items in _sections(report, now).items():
        for item in items:
            out.record(_RECORD_TYPE[section], **item)


def _summary(report: StatusReport, now: datetime) -> dict[str, Any]:
    sections = _sections(report, now)
    latest = max(report.sources, key=lambda s: s.last.finished_at, default=None)
    return {
        "repository": report.repository, "initialised": report.initialised,
        "repo_id": report.repo_id, "format_version": report.format_version,
        "snapshots": report.snapshots, "journal": report.journal_path,
        "journal_events": report.journal_events,
        "last_backup": _source_record(latest, now) if latest else None,
        "storage": _storage_record(report.usage, report.storage_low_journaled),
        **sections, "alert_count": len(report.alerts), "ok": not report.alerts,
        "repositories": [_repository_record(r, now) for r in report.repositories],
    }


def _repository_record(item: RepositoryHoldings, now: datetime) -> dict[str, Any]:
    return {"name": item.name, "url": item.url, "current": item.current,
            "repo_id": item.repo_id, "error": item.error,
            "sources": [{"source": n.source, "snapshot_id": n.snapshot_id,
                         "snapshot_time": n.time, "age_seconds": newest_age_seconds(n, now)}
                        for n in item.newest]}


# --- human ------------------------------------------------------------------------------



def _print_dashboard(out: Output, report: StatusReport, now: datetime) -> None:
    if not report.initialised:
        out.line(f"repository: {report.repository} (not initialised: run `vault init`)")
    else:
        out.line(f"repository: {report.repository} (id {(report.repo_id or '')[:12]}, "
                 f"format {report.format_version}, {report.snapshots} snapshots)")
        out.line(f"storage:    {_storage_line(report.usage, now)}")
    out.line(f"journal:    {report.journal_path} ({report.journal_events} events)")
    out.line(f"workers:    {worker_summary(report.workers, report.jobs)}")
    if report.initialised:
        _print_sources(out, report.sources, now)
        _print_jobs(out, report.jobs, now)
    _print_next_runs(out, report, now)
    _print_repositories(out, report.repositories, now)
    out.line()
    if not report.alerts:
        out.line("alerts: none")
        return
    out.line(f"alerts ({len(report.alerts)}):")
    for alert in report.alerts:
        out.line(f"  ! {alert.message}")


def _storage_line(usage: StorageUsage | None, now: datetime) -> str:
    if usage is None:
        return "unknown"
    # remembered figures (refreshed by every write and `vault stats --refresh`): say how old
    age = f", measured {format_age(now - usage.measured_at)} ago" if usage.measured_at else ""
    if usage.quota is None or usage.percent is None:
        return f"{human_bytes(usage.used)} used (no quota{age})"
    flag = "  LOW" if usage.low else ""
    return (f"{human_bytes(usage.used)} of {human_bytes(usage.quota)} quota "
            f"({usage.percent:.1f}%, warn at {usage.warn_percent:g}%{age}){flag}")


def _print_sources(out: Output, sources: list[SourceState], now: datetime) -> None:
    out.line()
    if not sources:
        out.line("last backups: none yet")
        return
    out.line("last backups:")
    rows = []
    for s in sources:
        last = s.last
        age = format_age(now - last.finished_at)
        if last.snapshot_id is None:
            state = f"{last.status} {age} ago: {last.error or 'no reason recorded'}"
            good = s.last_snapshot
            size = (f"(last good {(good.snapshot_id or '')[:8]}, "
                    f"{format_age(now - good.finished_at)} ago)") if good else "(no snapshot)"
            rows.append([last.label, last.source_type, state, "", "", size])
            continue
        rows.append([last.label, last.source_type, last.status, f"{age} ago",
                     human_bytes(last.bytes_raw or 0), human_bytes(last.bytes_new or 0)])
    out.table(["source", "type", "status", "age", "raw", "new"], rows)


def _print_jobs(out: Output, jobs: list[ActiveJob], now: datetime) -> None:
    out.line()
    if not jobs:
        out.line("running jobs: none")
        return
    out.line("running jobs:")
    rows = []
    for job in jobs:
        done = human_bytes(job.bytes_done or 0)
        if job.percent is not None:
            done = f"{job.percent:.0f}% ({done}/{human_bytes(job.bytes_total or 0)})"
        eta = format_duration(job.eta_seconds) if job.eta_seconds is not None else ""
        since = f"{format_age(now - job.since)} ago" if job.since else ""
        rows.append([job.job_id, job.label or job.kind, job.status, since,
                     job.phase or "", done, eta])
    out.table(["job", "what", "status", "since", "phase", "progress", "eta"], rows)


def _print_next_runs(out: Output, report: StatusReport, now: datetime) -> None:
    out.line()
    if not report.next_runs:
        out.line("next runs: none scheduled")
        return
    out.line("next runs:")
    for run in report.next_runs:
        out.line(f"  {run.at:%Y-%m-%d %H:%M} UTC  {run.name}  "
                 f"(in {format_age(run.at - now)})")


def _print_repositories(out: Output, repositories: list[RepositoryHoldings],
                        now: datetime) -> None:
    """Each configured repository and the newest snapshot of each source in it (the
    journal's view: what was backed up or copied there and not forgotten)."""
    if not repositories:
        return
    out.line()
    out.line("repositories (newest snapshot of each source):")
    rows = []
    for item in repositories:
        name = f"{item.name}{' *' if item.current else ''}"
        if item.error is not None or not item.newest:
            rows.append([name, item.url, item.error or "no snapshot recorded", "", ""])
            continue
        for newest in item.newest:
            rows.append([name, item.url, newest.source, newest.snapshot_id[:8],
                         f"{format_age(now - newest.time)} ago"])
            name = ""
    out.table(["repository", "location", "source", "snapshot", "age"], rows)


COMMANDS = [status]
