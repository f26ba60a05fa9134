"""Telling people how a queued or scheduled job ended (`vault.notify`).

The notice is built from the job's own journal stream (its terminal event), so it says
exactly what the journal says; sending never fails the job (`notify` never raises, and
any surprise here is logged and swallowed).
"""

from __future__ import annotations

import logging
from typing import Any

from vault.jobs.commands import JobCommand
from vault.journal import events as ev
from vault.notify import Notice, notify
from vault.notify.notice import Trigger
from vault.runtime.app import Vault

log = logging.getLogger("vault.jobs")


def job_notice(command: JobCommand, stream: list[ev.RecordedEvent],
               schedule: str | None = None) -> Notice | None:
    """The notice for a finished job, from its journal stream; None while it is unfinished."""
    for recorded in reversed(stream):
        event = recorded.event
        trigger: Trigger
        details: dict[str, Any] = {"job_id": command.job_id, "kind": command.kind,
                                   "what": command.args.describe(),
                                   "attempt": command.attempt}
        if isinstance(event, ev.BackupCompleted):
            trigger = "partial" if event.status == "partial" else "success"
            details.update(snapshot_id=event.snapshot_id, bytes_raw=event.bytes_raw,
                           bytes_new=event.bytes_new, bytes_stored=event.bytes_stored,
                           duration_seconds=event.duration_seconds,
                           problems=len(event.errors))
        elif isinstance(event, ev.VerifyCompleted):
            # Damage found is what a scheduled verify exists to tell: a failure notice.
            trigger = "success" if event.ok else "failure"
            details.update(problems=len(event.problems), bytes_read=event.bytes_read)
            if not event.ok:
                details["error"] = "; ".join(event.problems[:3])
        elif isinstance(event, ev.RestoreCompleted):
            trigger = "success"
        elif isinstance(event, ev.PruneCompleted):
            trigger = "success"
            details.update(bytes_deleted=event.bytes_deleted, bytes_freed=event.bytes_freed,
                           duration_seconds=event.duration_seconds)
        elif isinstance(event, ev.BackupFailed | ev.RestoreFailed | ev.VerifyFailed
                        | ev.PruneFailed):
            trigger = "failure"
            details.update(error_kind=event.error_kind, error=event.message)
        else:
            continue
        word = {"success": "completed", "partial": "partial", "failure": "failed"}[trigger]
        if isinstance(event, ev.VerifyCompleted) and not event.ok:
            word = f"found damage ({len(event.problems)} problem(s)): run `vault repair`"
        return Notice(trigger, f"{command.kind} of {command.args.describe()} {word}",
                      details, job_id=command.job_id, schedule=schedule)
    return None


def schedule_of(command: JobCommand) -> str | None:
    """The schedule a job was queued by: its backups carry the tag `schedule:NAME`, its
    verify names it."""
    named = getattr(command.args, "schedule", None)
    if named:
        return str(named)
    tags = getattr(command.args, "tags", [])
    names = [tag.removeprefix("schedule:") for tag in tags if tag.startswith("schedule:")]
    return names[0] if names else None


def send_job_notice(vault: Vault, command: JobCommand, schedule: str | None = None) -> None:
    try:
        notice = job_notice(command, vault.journal.stream(command.job_id), schedule)
        if notice is None or not vault.config.notifications:
            return
        only = None
        if schedule is not None:
            configured = [s for s in vault.config.schedules if s.name == schedule]
            only = configured[0].notify if configured and configured[0].notify else None
        notify(vault.config, vault.journal, notice, only=only)
    except Exception:  # a notification must never fail a job
        log.exception("job %s: sending its notification failed", command.job_id)
