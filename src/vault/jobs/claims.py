"""Claiming queued jobs in the journal: one job, or every queued member of its group.

A worker journals `JobClaimed` before it runs a job, naming the stream version it read,
so of two workers (or a worker and `vault jobs cancel`) racing for the same job exactly
one wins. A backup that belongs to a group (`BackupArgs.group_id`: `vault backup --queue
--group`, a schedule's run) is claimed together with every other member of the group
still queued, in one journal transaction: the worker that takes any member's message
runs the group, so the members' captures open at the same moment
(`vault.operations.group_capture`). The other members' messages, when taken, find their
job claimed and are skipped.
"""

from __future__ import annotations

import os
import socket

from vault.errors import StaleStreamVersion
from vault.foundation.processes import process_start_time
from vault.jobs.commands import BackupArgs, JobCommand
from vault.journal import Journal
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs

_TERMINAL = (ev.BackupCompleted, ev.BackupFailed, ev.RestoreCompleted, ev.RestoreFailed,
             ev.VerifyCompleted, ev.VerifyFailed, ev.PruneCompleted, ev.PruneFailed,
             ev.JobCancelled)


def claim(journal: Journal, command: JobCommand) -> bool:
    """Journal `JobClaimed` unless the job is cancelled, finished or taken by another worker."""
    return bool(claim_jobs(journal, [command]))


def claim_with_group(journal: Journal, command: JobCommand) -> list[JobCommand]:
    """Claim `command` and, for a group's backup, every other member of its group that is
    still queued (the command its newest `JobQueued` holds): the claimed commands, this
    one first, or [] when this job may not run (cancelled, finished, taken)."""
    while True:
        members = [command, *queued_group_members(journal, command)]
        try:
            return claim_jobs(journal, members, required=command)
        except StaleStreamVersion:
            continue  # another worker claimed one of them meanwhile: look again


def claim_jobs(journal: Journal, commands: list[JobCommand],
               required: JobCommand | None = None) -> list[JobCommand]:
    """Claim those of `commands` that may still run, in one transaction; [] when
    `required` (or, for a single command, it) may not. Retries a single claim that lost a
    race; a group's StaleStreamVersion goes to the caller, which looks for members again."""
    while True:
        claims: list[tuple[str, ev.Event]] = []
        versions: dict[str, int] = {}
        for command in commands:
            stream = journal.stream(command.job_id)
            if any(_settles(r.event, command.attempt) for r in stream):
                if command is required or len(commands) == 1:
                    return []
                continue
            claims.append((command.job_id, claim_event(command)))
            versions[command.job_id] = stream[-1].stream_version if stream else 0
        try:
            journal.append_many(claims, expected_versions=versions)
        except StaleStreamVersion:
            if len(commands) > 1:
                raise
            continue  # something else was appended meanwhile: look again
        claimed = {job_id for job_id, _ in claims}
        return [command for command in commands if command.job_id in claimed]


def claim_event(command: JobCommand) -> ev.JobClaimed:
    return ev.JobClaimed(job_id=command.job_id, kind=command.kind, attempt=command.attempt,
                         host=socket.gethostname(), pid=os.getpid(),
                         pid_started=process_start_time(os.getpid()))


def queued_group_members(journal: Journal, command: JobCommand) -> list[JobCommand]:
    """The other backups of `command`'s group that are queued, as their newest `JobQueued`
    holds them (the journal is the authority, never a queue message), with the same
    repository and config (only those can run in this job's process). Oldest first."""
    args = command.args
    if not isinstance(args, BackupArgs) or args.group_id is None:
        return []
    members: list[JobCommand] = []
    for row in reversed(read_jobs(journal.path, statuses=["queued"])):
        if row["job_id"] == command.job_id or row["kind"] != "backup":
            continue
        queued = [r.event for r in journal.stream(row["job_id"])
                  if isinstance(r.event, ev.JobQueued)]
        if not queued:
            continue
        member = JobCommand.model_validate(queued[-1].command)
        if (isinstance(member.args, BackupArgs) and member.args.group_id == args.group_id
                and (member.repository, member.config_path, member.overrides)
                == (command.repository, command.config_path, command.overrides)):
            members.append(member)
    return members


def _settles(event: ev.Event, attempt: int) -> bool:
    if isinstance(event, _TERMINAL):
        return True
    return isinstance(event, ev.JobClaimed) and event.attempt >= attempt
