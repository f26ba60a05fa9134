"""The Huey task: take a `JobCommand` off the queue and run its operation under its job id.

Thin on purpose. The task claims the job in the journal (so a cancelled, finished or
already-taken job is skipped), then calls `run_backup` / `run_restore` / `run_verify`
exactly as the CLI would inline. Whatever the operation raises is journaled as the job's
failure, never retried by Huey: retries after a dead worker are `vault.jobs.worker`'s call.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from huey import Huey
from huey.api import Task, TaskWrapper

from vault.app import Vault
from vault.config import VaultConfig, load_config
from vault.errors import StaleStreamVersion, VaultError
from vault.jobs.commands import BackupArgs, JobCommand, PruneArgs, RestoreArgs, VerifyArgs
from vault.jobs.notices import schedule_of, send_job_notice
from vault.journal import Journal
from vault.journal import events as ev
from vault.operations.backup import completed_event, run_backup
from vault.operations.group_backup import run_target, target_for, url_target
from vault.operations.prune import PruneRequest, run_prune
from vault.operations.restore import run_restore
from vault.operations.restore_undo import run_undo
from vault.operations.source_restore import run_source_restore
from vault.operations.verify import run_verify
from vault.progress import NullReporter

TASK_NAME = "vault.run_job"
#: the name Huey's registry knows the task by (module + name): the only one a message names
REGISTERED_TASK = f"{__name__}.{TASK_NAME}"
log = logging.getLogger("vault.jobs")

_FAILED = {"backup": ev.BackupFailed, "restore": ev.RestoreFailed, "verify": ev.VerifyFailed,
           "prune": ev.PruneFailed}
_TERMINAL = (ev.BackupCompleted, ev.BackupFailed, ev.RestoreCompleted, ev.RestoreFailed,
             ev.VerifyCompleted, ev.VerifyFailed, ev.PruneCompleted, ev.PruneFailed,
             ev.JobCancelled)


def register(huey: Huey, own_config: VaultConfig | None = None) -> TaskWrapper:
    """Register vault's one task on `huey` (its name is fixed: producers and workers agree).

    `own_config` is the worker's: its journal records a job whose own config cannot load.
    """

    def run_job(command: dict[str, Any], task: Task | None = None) -> None:
        execute(JobCommand.model_validate(command), own_config)

    wrapper: TaskWrapper = huey.task(context=True, name=TASK_NAME)(run_job)
    assert huey._registry.task_to_string(wrapper.task_class) == REGISTERED_TASK
    return wrapper


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks after boot (Linux), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return int(stat.rpartition(")")[2].split()[19])


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
        if not claim(vault.journal, command):
            log.info("job %s: already cancelled, taken or finished; skipped", command.job_id)
            return "skipped"
        log.info("job %s: running %s (attempt %d)", command.job_id, command.summary(),
                 command.attempt)
        result = _run(vault, command)
        send_job_notice(vault, command, schedule_of(command))
        return result
    finally:
        vault.close()


def claim(journal: Journal, command: JobCommand) -> bool:
    """Journal `JobClaimed` unless the job is cancelled, finished or taken by another worker.

    The append names the stream version it read, so of two workers (or a worker and
    `vault jobs cancel`) racing for the same job exactly one wins.
    """
    while True:
        stream = journal.stream(command.job_id)
        if any(_settles(r.event, command.attempt) for r in stream):
            return False
        try:
            journal.append(command.job_id, ev.JobClaimed(
                job_id=command.job_id, kind=command.kind, attempt=command.attempt,
                host=socket.gethostname(), pid=os.getpid(),
                pid_started=process_start_time(os.getpid())),
                expected_version=stream[-1].stream_version if stream else 0)
            return True
        except StaleStreamVersion:
            continue  # something else was appended meanwhile: look again


def _settles(event: ev.Event, attempt: int) -> bool:
    if isinstance(event, _TERMINAL):
        return True
    return isinstance(event, ev.JobClaimed) and event.attempt >= attempt


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
                target = target_for(vault.config.source(args.source)) if args.source \
                    else url_target(str(args.source_url))
                run_target(vault, target, request, NullReporter(), request.group_id,
                           request.group_time, job_id)
        elif isinstance(args, RestoreArgs):
            if args.undo_of is not None:
                run_undo(vault, args.undo_of, job_id=job_id)
            elif args.database:
                run_source_restore(vault, args.source_request(), job_id=job_id)
            else:
                run_restore(vault, args.request(), NullReporter(), job_id=job_id)
        elif isinstance(args, VerifyArgs):
            run_verify(vault, args.read_data, args.subset, NullReporter(), job_id=job_id)
        elif isinstance(args, PruneArgs):
            run_prune(vault, PruneRequest(max_unused=args.max_unused), NullReporter(),
                      job_id=job_id)
    except Exception as exc:  # journaled here or by JobRun; the worker goes on
        if not getattr(exc, "journaled", False):
            kind = exc.kind if isinstance(exc, VaultError) else type(exc).__name__
            vault.journal.append(job_id, _FAILED[command.kind](
                job_id=job_id, error_kind=kind, message=str(exc)))
        log.warning("job %s failed: %s", job_id, exc)
        return "failed"
    log.info("job %s finished", job_id)
    return "completed"


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
