"""`vault worker` and `vault jobs`: run queued jobs, list them, follow and cancel them."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import click

from vault.cli.main import CliState, output_options, pass_state
from vault.cli.output import Output, format_duration
from vault.errors import EXIT_FAILED, EXIT_PARTIAL, UsageError
from vault.foundation.progress import ProgressUpdate
from vault.foundation.units import human_bytes
from vault.jobs.commands import JobArgs
from vault.jobs.queue import JobNotFound, JobQueue
from vault.jobs.schedules import SCHEDULE_EVERY
from vault.jobs.submit import submit_job
from vault.journal import events as ev
from vault.journal.events import RecordedEvent
from vault.journal.projections.jobs import read_jobs

#: how often `jobs follow` looks at the journal, in seconds
FOLLOW_POLL = 0.5


def enqueue(state: CliState, args: JobArgs) -> None:
    """`--queue`: journal the request, put the job on the queue, print its id; exit 0."""
    job = submit_job(state.vault(), args, config_path=state.config_path,
                     overrides=state.overrides)
    out = state.output()
    out.line(f"queued {job.summary} as job {job.job_id}")
    out.info(f"follow it with: vault jobs follow {job.job_id}")
    out.summary(job_id=job.job_id, kind=job.kind, status="queued", queue=job.queue)


@click.command()
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Jobs run at once, each in its own thread (default: [queue] workers).")
@click.option("--retry-delay", type=click.FloatRange(0), default=10.0, show_default=True,
              metavar="SECONDS",
              help="Delay before the first retry of an interrupted backup; doubled after.")
@click.option("--schedule-every", type=click.FloatRange(0.1), default=SCHEDULE_EVERY,
              show_default=True, metavar="SECONDS",
              help="How often the schedules are checked for due runs.")
@pass_state
def worker(state: CliState, workers: int | None, retry_delay: float,
           schedule_every: float) -> None:
    """Run queued jobs until SIGTERM or SIGINT (running jobs finish first; a second signal
    stops at once). On start, jobs left running by a dead worker are marked interrupted
    and backups among them are queued again. The worker also runs the schedules
    (docs/schedules.md): due runs are queued, missed ones reported."""
    from vault.jobs.worker import WorkerOptions, run_worker  # huey: only for the worker

    config = state.config()
    run_worker(config, WorkerOptions(workers=workers or config.queue.workers,
                                     retry_delay=retry_delay, config_path=state.config_path,
                                     overrides=state.overrides,
                                     schedule_every=schedule_every))


@click.group(invoke_without_command=True)
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["requested", "queued", "running", "completed", "partial",
                                 "failed", "interrupted", "cancelled"]),
              help="Only jobs with this status (repeatable).")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True,
              help="At most N jobs, the most recently active first.")
@output_options
@pass_state
@click.pass_context
def jobs(ctx: click.Context, state: CliState, statuses: tuple[str, ...], limit: int) -> None:
    """List jobs (backup, restore, verify; inline or queued) from the journal."""
    if ctx.invoked_subcommand is not None:
        return
    vault = state.vault()
    vault.journal  # noqa: B018  # opening it marks inline jobs whose process was killed
    rows = read_jobs(vault.config.journal_path(), statuses=list(statuses) or None,
                     limit=limit)
    now = datetime.now(UTC)
    state.output().table(
        ["JOB", "KIND", "STATUS", "PROGRESS", "AGE"],
        [[r["job_id"], r["kind"], r["status"], _progress_text(r), _age(r, now)]
         for r in rows])
    state.output().summary(jobs=rows)


def _progress_text(row: dict[str, Any]) -> str:
    if row["phase"] is None:
        return ""
    done, total = row["bytes_done"] or 0, row["bytes_total"]
    if total:
        return f"{row['phase']} {100 * done / total:.0f}% of {human_bytes(total)}"
    return f"{row['phase']} {human_bytes(done)}"


def _age(row: dict[str, Any], now: datetime) -> str:
    when = row["requested_at"] or row["started_at"]
    if when is None:
        return ""
    seconds = (now - datetime.fromisoformat(when.replace("Z", "+00:00"))).total_seconds()
    return format_duration(max(0.0, seconds))


def _resolve(state: CliState, job_id: str) -> str:
    """A job id, or a unique prefix of one."""
    path = state.vault().config.journal_path()
    if read_jobs(path, job_id=job_id):
        return job_id
    matches = [r["job_id"] for r in read_jobs(path) if r["job_id"].startswith(job_id)]
    if len(matches) == 1 and len(job_id) >= 4:
        return str(matches[0])
    raise JobNotFound(job_id=job_id)


def _event_line(e: RecordedEvent) -> str:
    keep = ("status", "attempt", "phase", "bytes_done", "items_done", "snapshot_id",
            "error_kind", "message", "reason", "will_retry", "host", "pid", "summary", "ok")
    detail = ", ".join(f"{k}={v}" for k, v in e.payload.items() if k in keep)
    return f"{e.seq:>6}  {e.recorded_at.isoformat(timespec='seconds')}  {e.type:<18} {detail}"


def _event_record(e: RecordedEvent) -> dict[str, Any]:
    return {"seq": e.seq, "type": e.type, "recorded_at": e.recorded_at,
            "actor": e.actor.model_dump(), "payload": e.payload}


@jobs.command("show")
@click.argument("job_id")
@output_options
@pass_state
def jobs_show(state: CliState, job_id: str) -> None:
    """Show a job's status and every event it journaled (JOB_ID may be a unique prefix)."""
    job_id = _resolve(state, job_id)
    row = read_jobs(state.vault().config.journal_path(), job_id=job_id)[0]
    events = state.vault().journal.stream(job_id)
    out = state.output()
    out.line(f"job {job_id}: {row['kind']}, {row['status']}"
             + (f" (attempt {row['attempt']})" if row["attempt"] else ""))
    for e in events:
        out.line(_event_line(e))
    out.summary(job=row, events=[_event_record(e) for e in events])


@jobs.command("follow")
@click.argument("job_id")
@output_options
@pass_state
def jobs_follow(state: CliState, job_id: str) -> None:
    """Show a job's progress until it ends. Exit 0 completed, 3 partial, 1 failed,
    cancelled or interrupted without a retry."""
    job_id = _resolve(state, job_id)
    journal, out = state.vault().journal, state.output()
    reporter = out.progress_reporter()
    after = 0
    while True:
        for e in journal.read(stream_id=job_id, after_seq=after):
            after = e.seq
            if isinstance(e.event, ev.Progress):
                _show_progress(out, reporter, e.event)
                continue
            code = _outcome(out, e)
            if code is not None:
                out.summary(job_id=job_id, event=e.type, payload=e.payload, exit_code=code)
                if code:
                    raise click.exceptions.Exit(code)
                return
        time.sleep(FOLLOW_POLL)


def _show_progress(out: Output, reporter: Any, p: ev.Progress) -> None:
    update = ProgressUpdate(phase=p.phase, bytes_done=p.bytes_done, bytes_total=p.bytes_total,
                            items_done=p.items_done, items_total=p.items_total,
                            rate_bps=p.rate_bps, eta_seconds=p.eta_seconds, current=p.current)
    if reporter is not None:
        reporter.report(update)
    else:
        total = f"/{human_bytes(p.bytes_total)}" if p.bytes_total else ""
        out.info(f"{p.phase}: {human_bytes(p.bytes_done)}{total}, {p.items_done} items")


def _outcome(out: Output, e: RecordedEvent) -> int | None:
    """The exit code once `e` ends the job; None while it goes on."""
    event = e.event
    if isinstance(event, ev.JobQueued | ev.JobClaimed):
        out.info(f"{e.type.removeprefix('Job').lower()}: attempt {event.attempt}")
    elif isinstance(event, ev.JobInterrupted):
        out.line(f"interrupted: {event.reason}"
                 + ("; queued again" if event.will_retry else "; not retried"))
        return None if event.will_retry else EXIT_FAILED
    elif isinstance(event, ev.JobCancelled):
        out.line("cancelled")
        return EXIT_FAILED
    elif isinstance(event, ev.BackupFailed | ev.RestoreFailed | ev.VerifyFailed
                    | ev.PruneFailed):
        out.line(f"failed: {event.error_kind}: {event.message}")
        return EXIT_FAILED
    elif isinstance(event, ev.BackupCompleted):
        out.line(f"{event.status}: snapshot {event.snapshot_id[:8]} saved")
        return EXIT_PARTIAL if event.status == "partial" else 0
    elif isinstance(event, ev.RestoreCompleted):
        out.line(f"restored {event.files_restored} files to {event.target}")
        return EXIT_PARTIAL if event.errors else 0
    elif isinstance(event, ev.VerifyCompleted):
        out.line(f"verify {'ok' if event.ok else 'found problems'}")
        return 0 if event.ok else EXIT_FAILED
    elif isinstance(event, ev.PruneCompleted):
        out.line(f"pruned: deleted {event.packs_deleted} pack(s) "
                 f"({human_bytes(event.bytes_deleted)}), wrote {event.packs_written} "
                 f"({human_bytes(event.bytes_written)})")
        return 0
    return None


@jobs.command("cancel")
@click.argument("job_id")
@output_options
@pass_state
def jobs_cancel(state: CliState, job_id: str) -> None:
    """Cancel a queued job before a worker takes it (a running job cannot be cancelled)."""
    job_id = _resolve(state, job_id)
    vault = state.vault()
    JobQueue.from_config(vault.config).cancel(vault.journal, job_id)
    state.output().line(f"cancelled job {job_id}")
    state.output().summary(job_id=job_id, status="cancelled")


def absolute(path: str) -> str:
    return os.path.abspath(path)


def refuse_with_queue(queue: bool, **flags: bool) -> None:
    for name, given in flags.items():
        if queue and given:
            raise UsageError(f"--queue cannot be combined with --{name.replace('_', '-')}")


COMMANDS = [worker, jobs]
