"""Files as a target of the restore pipeline (`operations.restore`): a directory tree.

The plan (`restore.files_plan`) compares the snapshot's selected tree with what the
target holds; the executor (`restore.files.FileRestorer`) carries out exactly that plan.
A plan with conflicts under `--on-conflict fail` is refused before anything is written.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager
from typing import Any

from vault.errors import SafetyCopyImpossible, UsageError
from vault.foundation.progress import ProgressCounter, ProgressReporter
from vault.journal import events as ev
from vault.operations.common import record_read_damage
from vault.operations.readonly_lock import read_only_lock
from vault.operations.restore_checks import check_before_restore, warning_text
from vault.operations.restore_target import Applied, Planned
from vault.operations.restore_undo import files_safety_copy
from vault.planning.restore_plan import RestorePlan
from vault.planning.restore_request import FILES, RestoreRequest, check_request
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.restore.files import FileRestorer, RestoreStats
from vault.restore.files_plan import (
    FilesPlan,
    TargetNotEmptyError,
    holds_anything,
    plan_files,
    refuse_conflicts,
)
from vault.restore.report import RestoreReport, build_report
from vault.restore.selection import Selection
from vault.restore.snapshot_path import resolve_subtree, split_ref
from vault.runtime.app import Vault

__all__ = ["FilesTarget", "predicted_stats", "resolve_subtree", "split_ref"]


def predicted_stats(files_plan: FilesPlan) -> RestoreStats:
    """What carrying out `files_plan` would count (the dry run's numbers)."""
    stats = RestoreStats()
    for item in files_plan.plan.items:
        entry = files_plan.entries.get(item.key)
        if entry is None:
            continue
        kind = entry.node.type
        if kind == "dir":
            stats.dirs += item.action in ("create", "skip")
        elif item.action == "skip":
            stats.files_skipped += 1
        elif item.action in ("create", "overwrite", "rename"):
            if kind == "symlink":
                stats.symlinks += 1
            else:
                stats.files_restored += 1
                stats.bytes_written += entry.node.size
    return stats


def _selection(request: RestoreRequest, sub: str) -> Selection:
    return Selection(
        paths=tuple(os.path.join(sub, p.lstrip("/")) if sub != "/" else "/" + p.lstrip("/")
                    for p in request.paths),
        includes=tuple(request.includes), excludes=tuple(request.excludes))


class FilesTarget:
    """A directory restored from a files snapshot (`ID:sub/dir`: that subtree)."""

    def __init__(self, vault: Vault, repo: Repository, snapshot: Snapshot,
                 request: RestoreRequest) -> None:
        check_request(request, FILES)
        assert request.target is not None
        self.vault, self.repo, self.snapshot, self.request = vault, repo, snapshot, request
        self.where = os.path.abspath(request.target)
        if os.path.lexists(self.where) and not os.path.isdir(self.where):
            raise UsageError(f"restore target {self.where} exists and is not a directory")
        if request.files_mode == "new-target" and holds_anything(self.where):
            raise TargetNotEmptyError(target=self.where)
        self.sub = split_ref(request.snapshot_ref)[1]
        self.selection = _selection(request, self.sub)
        # Checked from the root (a damaged tree on the way to `sub` is as fatal as one below).
        self.warnings = check_before_restore(repo, snapshot, selection=Selection(
            paths=self.selection.paths or ((self.sub,) if self.sub != "/" else ()),
            includes=self.selection.includes, excludes=self.selection.excludes))
        self.subtree = resolve_subtree(repo, snapshot, self.sub)
        self.files_plan: FilesPlan | None = None

    def job_fields(self) -> dict[str, Any]:
        return {"target": self.where, "paths": self.request.paths,
                "include": self.request.includes, "exclude": self.request.excludes,
                "options": {"mode": self.request.files_mode,
                            "on_conflict": self.request.files_on_conflict,
                            "trust_mtime": self.request.trust_mtime}}

    def lock(self) -> AbstractContextManager[object | None]:
        return read_only_lock(self.vault, self.repo, operation="restore")

    def prepare(self) -> None:
        """Nothing to prepare: the plan loads the index."""

    def _plan_files(self) -> Planned:
        self.repo.load_index()
        self.files_plan = plan_files(
            self.repo, self.subtree, self.sub, self.where, self.selection,
            mode=self.request.files_mode, on_conflict=self.request.files_on_conflict,
            snapshot_short_id=self.snapshot.short_id, trust_mtime=self.request.trust_mtime)
        plan = self.files_plan.plan
        return Planned(plan, plan.destructive, plan.to_json(items=False))

    def plan(self, *, asking: bool) -> Planned:
        planned = self._plan_files()  # the executor carries it out: always made
        assert self.files_plan is not None
        refuse_conflicts(self.files_plan)  # before anything is written
        return planned

    def safety_copy(self, planned: Planned | None, job_id: str,
                    lock: object | None) -> ev.RestoreUndoable | None:
        if lock is None:  # the repository cannot be written: nor the copy
            raise SafetyCopyImpossible(repo=self.repo.location, target=self.where)
        assert self.files_plan is not None
        return files_safety_copy(self.vault, self.files_plan, job_id, self.snapshot.id)

    def apply(self, planned: Planned | None, reporter: ProgressReporter,
              job_id: str) -> Applied:
        assert self.files_plan is not None
        stats = FileRestorer(self.repo, self.files_plan, ProgressCounter(reporter, "restore"),
                             threads=self.request.threads).run()
        unrecorded = record_read_damage(self.repo, "restore", job_id, self.snapshot.id,
                                        [p.path for p in stats.problems])
        warnings = [{"kind": "damage_not_recorded", "detail": unrecorded}] if unrecorded \
            else []
        return _applied(stats, warnings)

    def report(self, planned: Planned | None, applied: Applied, duration: float,
               warnings: list[dict[str, Any]]
               ) -> tuple[RestorePlan, RestoreReport, dict[str, dict[str, str]]]:
        assert self.files_plan is not None and applied.files is not None
        stats = applied.files
        report = build_report(self.files_plan.plan, stats.failed_keys,
                              duration_seconds=duration,
                              warnings=[f"{p.path}: {p.error}" for p in stats.problems]
                              + [warning_text(w) for w in warnings])
        return self.files_plan.plan, report, {}

    def confirmation(self) -> Planned:
        return self._plan_files()

    def preview(self) -> tuple[Planned, Applied, RestoreReport]:
        started = time.monotonic()
        planned = self._plan_files()
        assert self.files_plan is not None
        report = build_report(self.files_plan.plan, (),
                              duration_seconds=time.monotonic() - started,
                              warnings=[f"{p}: {e}" for p, e in self.files_plan.refused])
        return planned, _applied(predicted_stats(self.files_plan), []), report


def _applied(stats: RestoreStats, warnings: list[dict[str, Any]]) -> Applied:
    return Applied(items=stats.files_restored, bytes=stats.bytes_written,
                   skipped=stats.files_skipped, dirs=stats.dirs,
                   problems=[ev.FileProblem(path=p.path, error=p.error)
                             for p in stats.problems],
                   warnings=warnings, files=stats)
