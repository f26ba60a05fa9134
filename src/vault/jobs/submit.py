"""Putting a job on the queue for `vault worker`: the one way every front end (the CLI's
`--queue`, the TUI's actions) submits work, so each journals the same request events."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault.errors import UsageError
from vault.jobs.commands import BackupArgs, JobArgs, JobCommand
from vault.jobs.queue import JobQueue
from vault.operations.backup import BackupRequest
from vault.operations.group_backup import BackupTarget
from vault.runtime.app import Vault
from vault.runtime.jobrun import new_job_id


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    kind: str
    summary: str
    queue: str  # where it was queued, without credentials


def submit_job(vault: Vault, args: JobArgs, *, config_path: Path | None,
               overrides: Mapping[str, Any]) -> SubmittedJob:
    """Journal the request, queue the job and return its id (the worker takes it from
    there). The command names the config file and overrides the front end resolved, and the
    repository it resolved, so the worker opens exactly the same one."""
    [job] = submit_jobs(vault, [args], config_path=config_path, overrides=overrides)
    return job


def submit_jobs(vault: Vault, jobs: list[JobArgs], *, config_path: Path | None,
                overrides: Mapping[str, Any]) -> list[SubmittedJob]:
    """Submit several jobs at once (a group's backups): all are journaled as queued in one
    transaction before the first message is sent, so the worker that takes the first
    finds every member of its group in the journal (`vault.jobs.claims`)."""
    commands = [JobCommand(
        job_id=new_job_id(args.kind), args=args, repository=vault.storage.location,
        config_path=str(config_path.resolve()) if config_path else None,
        overrides={**overrides, "repository.url": vault.config.repository.url})
        for args in jobs]
    queue = JobQueue.from_config(vault.config)
    queue.submit_many(vault.journal, commands)
    return [SubmittedJob(job_id=command.job_id, kind=command.kind, summary=command.summary(),
                         queue=queue.where) for command in commands]


def backup_job_args(plan: list[BackupTarget], req: BackupRequest,
                    group: str | None) -> list[BackupArgs]:
    """One queued job per target of a `vault backup` plan; several share a group id and
    time, as they would inline. Raises UsageError for what a worker could not do."""
    grouped = len(plan) > 1 or group is not None
    group_id = f"group-{uuid.uuid4().hex[:16]}" if grouped else None
    group_time = datetime.now(UTC).isoformat() if grouped else None
    jobs = []
    for target in plan:
        if target.url_had_password:
            raise UsageError("a queued job must not carry a password: give it to the worker "
                             "through the source's environment (PGPASSWORD) or vault.toml")
        paths = [os.path.abspath(p) for p in target.paths]  # the worker runs elsewhere
        if target.source is None and not any(os.path.lexists(p) for p in paths):
            raise UsageError(f"no such file or directory: {', '.join(paths)}")
        jobs.append(BackupArgs(
            paths=paths if target.files is None else [],
            excludes=req.excludes, includes=req.includes,
            exclude_larger_than=req.exclude_larger_than,
            one_file_system=req.one_file_system, tags=req.tags, force=req.force,
            source=target.label if target.adhoc_url is None and target.label else None,
            source_url=target.adhoc_url, group_id=group_id, group_time=group_time))
    return jobs
