"""Commands the TUI sends to the worker. The TUI never runs a backup, restore, verify or
prune in its own process: it journals the request and queues the job, exactly as `--queue` does,
and then follows the job's events like any other journal reader."""

from __future__ import annotations

from pathlib import Path

from vault.errors import UsageError
from vault.jobs.commands import JobArgs, PruneArgs, VerifyArgs
from vault.jobs.submit import SubmittedJob, backup_job_args, submit_job, submit_jobs
from vault.operations.backup import BackupRequest
from vault.operations.group_backup import plan_targets
from vault.planning.filters import read_exclude_file
from vault_tui.context import TuiContext


def submit(ctx: TuiContext, args: JobArgs) -> SubmittedJob:
    with ctx.vault() as vault:
        return submit_job(vault, args, config_path=ctx.config_path, overrides=ctx.overrides)


def backup_now(ctx: TuiContext, source_names: list[str] | None = None) -> list[SubmittedJob]:
    """What `vault backup --queue [--source NAME]...` queues: the named configured
    sources, or all of them (one group), with the config's backup defaults."""
    config = ctx.config()
    plan = plan_targets(config, [], list(source_names or []), None)
    defaults = config.backup
    excludes = list(defaults.exclude)
    if defaults.exclude_file:
        try:
            excludes += read_exclude_file(Path(defaults.exclude_file).read_text().splitlines())
        except OSError as exc:
            raise UsageError(f"cannot read exclude file {defaults.exclude_file}: "
                             f"{exc.strerror}") from exc
    request = BackupRequest(paths=[], excludes=excludes,
                            exclude_larger_than=defaults.exclude_larger_than,
                            one_file_system=defaults.one_file_system, tags=list(defaults.tags))
    jobs: list[JobArgs] = list(backup_job_args(plan, request, None))
    with ctx.vault() as vault:  # a group in one go: the worker captures it together
        return submit_jobs(vault, jobs, config_path=ctx.config_path, overrides=ctx.overrides)


def verify_repository(ctx: TuiContext, read_data: bool = False) -> SubmittedJob:
    return submit(ctx, VerifyArgs(read_data=read_data))


def prune_repository(ctx: TuiContext) -> SubmittedJob:
    """What `vault prune --queue` queues (the default threshold: repack above 5% unused)."""
    return submit(ctx, PruneArgs())
