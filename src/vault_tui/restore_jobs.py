"""The restore browser's dealings with vault: the preview (a dry run), queueing the
restore and its undo for the worker, and following what became of them.

The TUI runs no restore in its own process. The preview is `vault restore --dry-run`
(it reads the snapshot and the target, writes nothing); the restore and the undo are
queued exactly as `vault restore --queue [--yes]` queues them (`vault.jobs.submit`), and
their progress and report are read back from the journal as the worker writes them.
These functions run in worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.foundation.sqlite_readonly import open_read_only
from vault.jobs.commands import RestoreArgs
from vault.jobs.submit import SubmittedJob
from vault.journal import events as ev
from vault.journal.projections.jobs import read_jobs
from vault.operations.restore import preview_restore
from vault.operations.restore_undo import undoable
from vault_tui.actions import submit
from vault_tui.context import TuiContext
from vault_tui.data.restore_plan import SnapshotChoice
from vault_tui.data.restore_tree import snapshot_choices

__all__ = ["Preview", "RestoreJobState", "ScreenData", "preview", "queue_restore",
           "queue_undo", "screen_data"]

_FINISHED = ("completed", "partial", "failed", "interrupted", "cancelled")


@dataclass(frozen=True)
class Preview:
    """What `vault restore --dry-run` says of `args`: its plan without the items
    (`RestorePlan.to_json(items=False)`: mode, on_conflict, totals, groups,
    bytes_to_write, destructive) and its warnings."""

    args: RestoreArgs
    plan: dict[str, Any]
    warnings: list[str]


def preview(ctx: TuiContext, args: RestoreArgs) -> Preview:
    ctx.repository()  # no passphrase known yet: PassphraseNeeded, and the app asks
    with ctx.vault() as vault:
        outcome = preview_restore(vault, args.request())
    return Preview(args, outcome.plan_json(items=False) or {}, outcome.warning_texts())


def queue_restore(ctx: TuiContext, args: RestoreArgs, yes: bool) -> SubmittedJob:
    """Queue the restore; `yes` once the operator typed the target's name for a
    destructive plan (`--queue --yes`): the worker then carries it out."""
    return submit(ctx, args.model_copy(update={"yes": yes}))


def queue_undo(ctx: TuiContext, restore_job_id: str) -> SubmittedJob:
    """Queue `vault restore undo JOB` for the worker (refused now when there is nothing
    to undo)."""
    with ctx.vault() as vault:
        mark = undoable(vault, restore_job_id)
    return submit(ctx, RestoreArgs(snapshot_ref=mark.undo_snapshot_id, target=mark.target,
                                   undo_of=restore_job_id))


@dataclass(frozen=True)
class RestoreJobState:
    """A restore job as the journal tells it so far."""

    job_id: str
    status: str  # requested, queued, running, completed, partial, failed, ...
    row: dict[str, Any]  # the jobs projection's row (progress columns, error)
    completed: ev.RestoreCompleted | None = None
    report: ev.RestoreReported | None = None  # files restores journal one
    undoable: ev.RestoreUndoable | None = None
    undone: ev.RestoreUndone | None = None
    safety_copy_kept: bool = False

    @property
    def finished(self) -> bool:
        return self.status in _FINISHED

    @property
    def can_undo(self) -> bool:
        """Undo is offered while the pre-restore snapshot is kept and nothing undid it."""
        return self.finished and self.undoable is not None and self.undone is None \
            and self.safety_copy_kept

    @property
    def error(self) -> str | None:
        message = self.row.get("error_message")
        return str(message) if message else None


def job_state(ctx: TuiContext, journal: Path, job_id: str) -> RestoreJobState | None:
    rows = read_jobs(journal, job_id=job_id)
    if not rows:
        return None
    with ctx.vault() as vault:
        events = [recorded.event for recorded in vault.journal.stream(job_id)]

    def last(kind: type[Any]) -> Any:
        found = [e for e in events if isinstance(e, kind)]
        return found[-1] if found else None

    mark: ev.RestoreUndoable | None = last(ev.RestoreUndoable)
    return RestoreJobState(job_id, str(rows[0]["status"]), rows[0],
                           completed=last(ev.RestoreCompleted), report=last(ev.RestoreReported),
                           undoable=mark, undone=last(ev.RestoreUndone),
                           safety_copy_kept=mark is not None and _kept(journal,
                                                                       mark.undo_snapshot_id))


def _kept(journal: Path, snapshot_id: str) -> bool:
    """Whether the snapshot is still there as far as the journal knows (not forgotten)."""
    conn = open_read_only(journal, timeout=30)
    try:
        row = conn.execute("SELECT status FROM snapshots WHERE snapshot_id = ?",
                           (snapshot_id,)).fetchone()
    finally:
        conn.close()
    return row is None or row[0] != "forgotten"


@dataclass(frozen=True)
class ScreenData:
    snapshots: list[SnapshotChoice]
    job: RestoreJobState | None  # the restore queued from the browser, if any
    undo: RestoreJobState | None  # its undo, once queued


def screen_data(ctx: TuiContext, job_id: str | None, undo_id: str | None) -> ScreenData:
    journal = ctx.config().journal_path()
    return ScreenData(snapshot_choices(journal),
                      job_state(ctx, journal, job_id) if job_id else None,
                      job_state(ctx, journal, undo_id) if undo_id else None)
