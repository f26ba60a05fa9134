"""Undo for restores: a safety copy of what a restore will change, taken before it writes.

Before a restore that overwrites or deletes anything (its plan is `destructive`), the part
of the target it will change is backed up as a snapshot tagged `pre-restore` (retention
keeps it at least 24 hours) and `RestoreUndoable` is journaled on the restore's stream,
naming that snapshot and everything the restore may create. Both happen before the first
write, so a restore killed midway can still be undone. `undo_restore` puts the target back:

* files: the safety copy is restored over the changed paths (their old contents, modes and
  times), then what the restore created is removed (files, then emptied directories);
* databases: the safety copy (a capture of the affected tables/collections of the target,
  through the source's `for_target`) is restored in mode overwrite, which also deletes the
  records the restore added.

A restore that fails midway is rolled back the same way at once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

from vault.errors import OperationFailed, UsageError
from vault.foundation.progress import NullReporter
from vault.journal import events as ev
from vault.restore.files_plan import FilesPlan
from vault.runtime.app import Vault
from vault.runtime.jobrun import JobRun
from vault.sources.base import Source, SourceRestoreRequest, StoredItems

PRE_RESTORE_TAG = "pre-restore"
T = TypeVar("T")
log = logging.getLogger("vault.restore")


class NothingToUndo(UsageError):
    """restore {job_id} cannot be undone: {why}"""


class UndoFailed(OperationFailed):
    """undo of restore {job_id} failed: {detail}"""


def _tags(job_id: str) -> list[str]:
    return [PRE_RESTORE_TAG, f"restore:{job_id}"]


# --- taking the safety copy -------------------------------------------------------------


def files_safety_copy(vault: Vault, planned: FilesPlan, job_id: str,
                      snapshot_id: str) -> ev.RestoreUndoable | None:
    """Back up what a file restore will overwrite or delete and journal how to undo it;
    None when the plan changes nothing that exists."""
    from vault.operations.backup import BackupRequest, run_backup

    def absolute(key: str) -> str:
        return os.path.join(planned.target, key.rstrip("/"))

    changed = sorted({absolute(i.key) for i in planned.plan.items
                      if i.action in ("overwrite", "delete")})
    created = sorted({absolute(i.key) for i in planned.plan.items if i.action == "create"}
                     | {absolute(i.key) + planned.rename_suffix
                        for i in planned.plan.items if i.action == "rename"})
    if not changed:
        return None
    outcome = run_backup(vault, BackupRequest(paths=changed, tags=_tags(job_id)),
                         NullReporter())
    assert outcome.snapshot is not None
    event = ev.RestoreUndoable(job_id=job_id, kind="files", snapshot_id=snapshot_id,
                               undo_snapshot_id=outcome.snapshot.id,
                               target=planned.target, created=created, only=[])
    vault.journal.append(job_id, event)
    return event


def database_safety_copy(vault: Vault, source: Source, label: str,
                         request: SourceRestoreRequest, stored: StoredItems, job_id: str,
                         snapshot_id: str) -> ev.RestoreUndoable | None:
    """Capture the affected part of the target database and journal how to undo."""
    from vault.operations.source_backup import SourceBackupRequest, run_source_backup

    affected = source.for_target(request, stored)
    if affected is None:
        return None
    outcome = run_source_backup(vault, SourceBackupRequest(
        source=affected, label=f"pre-restore {label}", tags=_tags(job_id)), NullReporter())
    assert outcome.snapshot is not None
    event = ev.RestoreUndoable(job_id=job_id, kind=source.type, snapshot_id=snapshot_id,
                               undo_snapshot_id=outcome.snapshot.id,
                               target=request.target, created=[], only=list(request.only))
    vault.journal.append(job_id, event)
    return event


# --- putting it back --------------------------------------------------------------------


def undoable(vault: Vault, job_id: str) -> ev.RestoreUndoable:
    stream = vault.journal.stream(job_id)
    if not stream:
        raise NothingToUndo(job_id=job_id, why="no such job in the journal")
    if any(isinstance(r.event, ev.RestoreUndone) for r in stream):
        raise NothingToUndo(job_id=job_id, why="it was undone already")
    marks = [r.event for r in stream if isinstance(r.event, ev.RestoreUndoable)]
    if not marks:
        raise NothingToUndo(job_id=job_id, why="it changed nothing that existed, or it is "
                            "not a restore (only restores that overwrite or delete keep a "
                            "safety copy)")
    return marks[-1]


def undo_restore(vault: Vault, job_id: str, *, reason: str = "requested") -> ev.RestoreUndone:
    """Put the target of restore `job_id` back as it was before it wrote anything."""
    mark = undoable(vault, job_id)
    try:
        undo = _undo_files if mark.kind == "files" else _undo_database
        details = undo(vault, mark)
    except Exception as exc:
        raise UndoFailed(job_id=job_id, detail=str(exc)) from exc
    event = ev.RestoreUndone(job_id=job_id, undo_snapshot_id=mark.undo_snapshot_id,
                             target=mark.target, reason=reason, **details)
    vault.journal.append(job_id, event)
    return event


def run_undo(vault: Vault, restore_job_id: str, *, job_id: str | None = None
             ) -> ev.RestoreUndone:
    """`undo_restore` as a restore job of its own (`RestoreArgs.undo_of`, queued for the
    worker by the TUI): its stream says it started and how it ended, and the restore's
    stream gets the same `RestoreUndone` as `vault restore undo` journals."""
    mark = undoable(vault, restore_job_id)  # nothing to undo: the job fails, unstarted
    target = mark.target or "(the source's own location)"
    run = JobRun.start(vault.journal, "restore", job_id, repository=vault.storage.location,
                       snapshot_ref=mark.undo_snapshot_id, target=target, paths=[],
                       include=[], exclude=[], options={"undo_of": restore_job_id})
    started = time.monotonic()
    with run:
        run.record(ev.RestoreStarted(job_id=run.job_id, snapshot_id=mark.undo_snapshot_id))
        done = undo_restore(vault, restore_job_id)
        run.complete(ev.RestoreCompleted(
            job_id=run.job_id, snapshot_id=mark.undo_snapshot_id, target=target,
            files_restored=done.restored, files_skipped=0, dirs=0, bytes_written=0,
            duration_seconds=time.monotonic() - started, errors=[]))
    return done


def _undo_files(vault: Vault, mark: ev.RestoreUndoable) -> dict[str, int]:
    from vault.operations.restore import run_restore
    from vault.planning.restore_request import RestoreMode, RestoreRequest

    # What the restore created goes first, so that putting the old files back is the last
    # thing to touch their directories (and their times come out as they were).
    removed = 0
    for path in sorted(mark.created, key=lambda p: -p.count("/")):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)  # only an emptied directory: never anything else's
            else:
                os.unlink(path)
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("undo: could not remove %s: %s", path, exc)
    restored = 0
    if mark.undo_snapshot_id:
        # The copy holds the changed paths at their absolute places: restore exactly those
        # into "/" (the selection keeps the planner away from the rest of the file system).
        copy = vault.repository().find_snapshot(mark.undo_snapshot_id)
        outcome = run_restore(vault, RestoreRequest(
            snapshot_ref=mark.undo_snapshot_id, target="/", paths=list(copy.paths),
            mode=RestoreMode.MERGE, on_conflict="overwrite", safety_copy=False,
            hooks=False))  # inside a rollback the restore's hooks ran
        restored = outcome.stats.files_restored
    return {"restored": restored, "removed": removed}


def _undo_database(vault: Vault, mark: ev.RestoreUndoable) -> dict[str, int]:
    from vault.operations.restore_source import source_of
    from vault.restore.items import SnapshotItems

    repo = vault.repository()
    repo.load_index()
    original = repo.find_snapshot(mark.snapshot_id)
    copy = repo.find_snapshot(mark.undo_snapshot_id)
    source = source_of(vault, original, mark.target)
    result = source.apply(SnapshotItems(repo, copy), SourceRestoreRequest(
        target=mark.target, only=tuple(mark.only), mode="overwrite",
        on_conflict="overwrite", scratch_dir=str(vault.cache_dir / "scratch")))
    return {"restored": result.items, "removed": 0}


def write_or_roll_back(vault: Vault, job_id: str, undo: ev.RestoreUndoable | None,
                      write: Callable[[], T]) -> T:
    """Run a restore's writes; if they fail and a safety copy was taken, undo at once."""
    try:
        return write()
    except BaseException as exc:
        if undo is not None:
            rollback(vault, job_id, exc)
        raise


def rollback(vault: Vault, job_id: str, cause: BaseException) -> None:
    """Undo a restore that failed midway; its own failure is logged, the cause re-raised
    by the caller."""
    try:
        undo_restore(vault, job_id, reason=f"rolled back after: {cause}")
        log.warning("restore %s failed and was rolled back", job_id)
    except Exception as exc:  # the restore's own error matters more
        log.error("restore %s failed and could not be rolled back: %s", job_id, exc)

