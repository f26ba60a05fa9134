"""What the Schedules screen changes: the same core calls as `vault schedule pause|resume|
run`, and the retention editor's `set_schedule_retention`. Each journals its change; a run
queues its jobs for `vault worker` (the TUI runs none itself). Called in a worker thread;
each returns the one line the operator is told."""

from __future__ import annotations

from datetime import UTC, datetime

from vault.config.model import Retention
from vault.errors import ConfigError
from vault.jobs.queue import JobQueue
from vault.jobs.schedules import run_now
from vault.planning.retention import RetentionPolicy
from vault.runtime.effective_schedules import (
    find_schedule,
    pause_schedule,
    resume_schedule,
    set_schedule_retention,
)
from vault_tui.context import TuiContext


def pause(ctx: TuiContext, name: str) -> str:
    with ctx.vault() as vault:
        pause_schedule(vault.config, vault.journal, name, datetime.now(UTC))
    return f"schedule {name} paused"


def resume(ctx: TuiContext, name: str) -> str:
    with ctx.vault() as vault:
        resume_schedule(vault.config, vault.journal, name, datetime.now(UTC))
    return f"schedule {name} resumed"


def run(ctx: TuiContext, name: str) -> str:
    """`vault schedule run NAME`: one run now, outside the timetable."""
    with ctx.vault() as vault:
        now = datetime.now(UTC)
        item = find_schedule(vault.config, vault.journal, name, now)
        queue = JobQueue.from_config(vault.config)
        queue.check()
        prepared = run_now(vault.config, vault.journal, queue, item, now,
                           config_path=ctx.config_path,
                           overrides={**ctx.overrides,
                                      "repository.url": vault.config.repository.url})
    if prepared.error is not None:
        raise ConfigError(f"schedule {name}: {prepared.error}")
    jobs = len(prepared.event.job_ids)
    return f"schedule {name}: queued {jobs} backup job{'s' if jobs != 1 else ''}"


def set_retention(ctx: TuiContext, name: str, retention: Retention | None) -> str:
    with ctx.vault() as vault:
        item = set_schedule_retention(vault.config, vault.journal, name, retention,
                                      datetime.now(UTC))
        effective = vault.config.retention_for(item.schedule)
    policy = RetentionPolicy.from_config(effective, timezone=item.schedule.timezone)
    return f"schedule {name}: {policy.describe()}"
