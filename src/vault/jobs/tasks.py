"""The Huey task: take a `JobCommand` off the queue and run its operation under its job id.

Thin on purpose. The task claims the job in the journal (so a cancelled, finished or
already-taken job is skipped), then calls `run_backup` / `run_restore` / `run_verify`
exactly as the CLI would inline. A backup of a group claims the group's other queued
members with it and runs them together, each as its own job, as `vault backup --group`
does inline (`vault.jobs.claims`). Whatever the operation raises is journaled as the
job's failure, never retried by Huey: retries after a dead worker are
`vault.jobs.worker`'s call.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from huey import Huey
from huey.api import Task, TaskWrapper

from vault.config.model import VaultConfig, load_config
from vault.errors import VaultError
from vault.foundation.processes import process_start_time as process_start_time  # re-export
from vault.foundation.progress import NullReporter
from vault.jobs.claims import claim, claim_with_group
from vault.jobs.commands import BackupArgs, JobCommand, PruneArgs, RestoreArgs, VerifyArgs
from vault.jobs.notices import schedule_of, send_job_notice
from vault.jobs.waiting import WaitingMembers
from vault.journal import Journal
from vault.journal import events as ev
from vault.operations.backup import completed_event, run_backup
from vault.operations.group_backup import (
    BackupTarget,
    MemberJob,
    back_up_together,
    run_target,
    target_for,
    url_target,
)
from vault.operations.prune import PruneRequest, run_prune
from vault.operations.restore import run_restore
from vault.operations.restore_undo import run_undo
from vault.operations.verify import run_verify
from vault.runtime.app import Vault

TASK_NAME = "vault.run_job"
#: the name Huey's registry knows the task by (module + name): the only one a message names
REGISTERED_TASK = f"{__name__}.{TASK_NAME}"
log = logging.getLogger("vault.jobs")

_FAILED = {"backup": ev.BackupFailed, "restore": ev.RestoreFailed, "verify": ev.VerifyFailed,
           "prune": ev.PruneFailed}


def register(huey: Huey, own_config: VaultConfig | None = None) -> TaskWrapper:
    """Register vault's one task on `huey` (its name is fixed: producers and workers agree).

    `own_config` is the worker's: its journal records a job whose own config cannot load.
    """

    def run_job(command: dict[str, Any], task: Task | None = None) -> None:
        execute(JobCommand.model_validate(command), own_config)

    wrapper: TaskWrapper = huey.task(context=True, name=TASK_NAME)(run_job)
    assert huey._registry.task_to_string(wrapper.task_class) == REGISTERED_TASK
    return wrapper


def execute(command: JobCommand, own_config: VaultConfig | None = None) -> str:
    """Run one job; returns what happened: "skipped", "completed" or "failed"."""
    config_path = Path(command.config_path) if command.config_path else None
    try:
        config = load_config(config_path, overrides=command.overrides)
    except VaultError as exc:  # e.g. the config file was edited since the job was queued
        if own_config is None:
            raise
        with Journal(own_config.journal_path()) as journal:
            if claim(journal, command):
                journal.append(command.job_id, _FAILED[command.kind](
                    job_id=command.job_id, error_kind=exc.kind, message=exc.message))
        log.warning("job %s failed: %s", command.job_id, exc)
        return "failed"
    vault = Vault(config)
    try:
        claimed = claim_with_group(vault.journal, command)
        if not claimed:
            log.info("job %s: already cancelled, taken or finished; skipped", command.job_id)
            return "skipped"
        for member in claimed:
            log.info("job %s: running %s (attempt %d)", member.job_id, member.summary(),
                     member.attempt)
        if len(claimed) == 1:
            results = {command.job_id: _run(vault, command)}
        else:
            results = _run_group(vault, claimed)
        for member in claimed:
            send_job_notice(vault, member, schedule_of(member))
        return results[command.job_id]
    finally:
        vault.close()


def _run(vault: Vault, command: JobCommand) -> str:
    args, job_id = command.args, command.job_id
    try:
        if isinstance(args, BackupArgs):
            if command.attempt > 1 and _already_saved(vault, job_id):
                return "completed"
            request = args.request()
            if args.source is None and args.source_url is None:
                run_backup(vault, request, NullReporter(), job_id=job_id)
            else:
                run_target(vault, _backup_target(vault, args), request, NullReporter(),
                           request.group_id, request.group_time, job_id)
        elif isinstance(args, RestoreArgs):
            if args.undo_of is not None:
                run_undo(vault, args.undo_of, job_id=job_id)
            else:
                run_restore(vault, args.request(), confirm=args.confirm(), job_id=job_id)
        elif isinstance(args, VerifyArgs):
            run_verify(vault, args.read_data, args.subset, NullReporter(), job_id=job_id)
        elif isinstance(args, PruneArgs):
            run_prune(vault, PruneRequest(max_unused=args.max_unused), NullReporter(),
                      job_id=job_id)
    except Exception as exc:  # journaled here or by JobRun; the worker goes on
        return _failed(vault, command, exc)
    log.info("job %s finished", job_id)
    return "completed"


def _backup_target(vault: Vault, args: BackupArgs) -> BackupTarget:
    if args.source is not None:
        return target_for(vault.config.source(args.source))
    if args.source_url is not None:
        return url_target(args.source_url)
    return BackupTarget(label=None, paths=args.paths)


def _run_group(vault: Vault, commands: list[JobCommand]) -> dict[str, str]:
    """Back up a group's claimed members together (`back_up_together`: every source's
    capture opened at once, files streamed first), each under its own job id; what
    happened to each, by job id. A member that fails, also before it starts (its source
    gone from the config), fails alone; a retried member already saved is not run."""
    results: dict[str, str] = {}
    members: list[tuple[JobCommand, MemberJob]] = []
    for command in commands:
        assert isinstance(command.args, BackupArgs)  # only backups are claimed together
        try:
            if command.attempt > 1 and _already_saved(vault, command.job_id):
                results[command.job_id] = "completed"
                continue
            target = _backup_target(vault, command.args)
        except Exception as exc:  # this member only
            results[command.job_id] = _failed(vault, command, exc)
            continue
        members.append((command, MemberJob(target, command.args.request(), command.job_id)))
    if not members:
        return results
    request = members[0][1].base
    with WaitingMembers(vault.journal, [m.job_id for _, m in members]):
        outcomes = back_up_together(vault, [m for _, m in members], NullReporter(),
                                    request.group_id, request.group_time)
    for (command, _), outcome in zip(members, outcomes, strict=True):
        if isinstance(outcome, Exception):
            results[command.job_id] = _failed(vault, command, outcome)
        else:
            log.info("job %s finished", command.job_id)
            results[command.job_id] = "completed"
    return results


def _failed(vault: Vault, command: JobCommand, exc: Exception) -> str:
    """Journal the job's failure unless its `JobRun` did; "failed"."""
    if not getattr(exc, "journaled", False):
        kind = exc.kind if isinstance(exc, VaultError) else type(exc).__name__
        vault.journal.append(command.job_id, _FAILED[command.kind](
            job_id=command.job_id, error_kind=kind, message=str(exc)))
    log.warning("job %s failed: %s", command.job_id, exc)
    return "failed"


def _already_saved(vault: Vault, job_id: str) -> bool:
    """A retried backup whose first attempt died after saving its snapshot: journal that
    snapshot as the job's result instead of taking a second one."""
    repo = vault.repository()
    saved = [s for s in repo.snapshots() if s.job_id == job_id]
    if not saved:
        return False
    vault.journal.append(job_id, completed_event(job_id, repo, saved[-1]))
    log.info("job %s: snapshot %s was saved before the interruption", job_id, saved[-1].id)
    return True
