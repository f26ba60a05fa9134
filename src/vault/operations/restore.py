"""The one restore pipeline, for files and for every source alike.

A restore is twelve steps whatever it restores: check the snapshot (format, every object
the selection needs: `restore_checks`), and for a dry run plan and stop there (no lock, no
job, nothing written). Otherwise start the job, take the repository lock, plan, ask
`confirm` when the plan is destructive, run the `[restore]` pre_hook (a failure aborts;
the plan is made again afterwards, as the paused writers may have changed the target),
keep a safety copy of what will change (`restore_undo`), write (or roll back from that
copy when the write fails), run the post_hook (also after a failure) and journal the
report.

What differs between files and a database is behind `RestoreTarget`: `FilesTarget`
(`restore_files`) writes a directory tree from the plan it made; `SourceTarget`
(`restore_source`) has the snapshot's source plan and apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vault.config.model import RestoreConfig
from vault.foundation.progress import MultiReporter, NullReporter, ProgressReporter
from vault.journal import events as ev
from vault.operations.restore_checks import Confirm, warning_text
from vault.operations.restore_files import FilesTarget
from vault.operations.restore_source import SourceTarget, find_restore_snapshot
from vault.operations.restore_target import Applied, Planned, RestoreTarget
from vault.operations.restore_undo import write_or_roll_back
from vault.planning.restore_plan import RestorePlan
from vault.planning.restore_request import RestoreRequest, check_copy
from vault.repository.snapshot import Snapshot
from vault.restore.files import RestoreStats
from vault.restore.hooks import RestoreHooks
from vault.restore.report import RestoreReport
from vault.restore.snapshot_path import resolve_subtree, split_ref
from vault.runtime.app import Vault
from vault.runtime.jobrun import JobRun
from vault.sources.base import SourceRestoreResult

__all__ = ["Applied", "Planned", "RestoreOutcome", "RestoreTarget", "confirmation_plan",
           "preview_restore", "reported_event", "resolve_subtree", "run_restore", "split_ref"]


@dataclass
class RestoreOutcome:
    job_id: str | None  # None for a dry run
    snapshot: Snapshot
    request: RestoreRequest
    duration_seconds: float
    plan: RestorePlan | None  # the plan carried out (or, dry, that would be)
    applied: Applied  # for a dry run: what the plan predicts
    report: RestoreReport | None = None
    #: warning records ({"kind": "older_version", ...}, {"kind": "post_hook_failed", ...})
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stats(self) -> RestoreStats:
        """A files restore's counts."""
        assert self.applied.files is not None, "not a files restore"
        return self.applied.files

    @property
    def result(self) -> SourceRestoreResult:
        """A database restore's result."""
        assert self.applied.result is not None, "not a database restore"
        return self.applied.result

    def plan_json(self, *, items: bool = True) -> dict[str, Any] | None:
        """The plan carried out (or, dry, that would be) as JSON; None for a database
        swapped whole (its source has no per-record plan)."""
        plan = self.plan if self.applied.files is not None else self.result.plan
        return plan.to_json(items=items) if plan is not None else None

    def warning_texts(self) -> list[str]:
        """Every warning as a line: the checks' and the hooks'; a dry run's report adds
        the entries its plan refused (a real report repeats the former)."""
        refused = self.report.warnings if self.report and self.request.dry_run else []
        return [warning_text(w) for w in self.warnings] + refused


def restore_target(vault: Vault, request: RestoreRequest) -> RestoreTarget:
    """The target a request writes to, chosen by what its snapshot holds; checked (format,
    objects present, the request's rules) before anything else happens."""
    check_copy(request)  # before the repository is opened
    repo = vault.repository()
    snapshot = find_restore_snapshot(repo, request)
    if str(snapshot.source.get("type", "files")) == "files":
        return FilesTarget(vault, repo, snapshot, request)
    return SourceTarget(vault, repo, snapshot, request)


def preview_restore(vault: Vault, request: RestoreRequest) -> RestoreOutcome:
    """What `request` would do, planned on what the target holds now: no lock, no job,
    nothing written (`vault restore preview`, `--dry-run`, the TUI's preview)."""
    target = restore_target(vault, request.model_copy(update={"dry_run": True}))
    started = time.monotonic()
    planned, applied, report = target.preview()
    return RestoreOutcome(None, target.snapshot, request, time.monotonic() - started,
                          planned.plan if planned else None, applied, report,
                          target.warnings)


def confirmation_plan(vault: Vault, request: RestoreRequest) -> Planned | None:
    """What a restore that cannot ask later (a queued one) is confirmed by now: its plan
    on what the target holds now (a database's whole swap is destructive unplanned)."""
    return restore_target(vault, request.model_copy(update={"dry_run": True})).confirmation()


def run_restore(vault: Vault, request: RestoreRequest, *,
                reporter: ProgressReporter | None = None, confirm: Confirm | None = None,
                job_id: str | None = None) -> RestoreOutcome:
    """Carry out `request` (a dry run is `preview_restore`). `confirm` is asked before a
    destructive plan is carried out (None: go ahead)."""
    if request.dry_run:
        return preview_restore(vault, request)
    target = restore_target(vault, request)
    run = JobRun.start(vault.journal, "restore", job_id, repository=vault.storage.location,
                       snapshot_ref=request.snapshot_ref, **target.job_fields())
    started = time.monotonic()
    with run, target.lock() as lock:
        run.record(ev.RestoreStarted(job_id=run.job_id, snapshot_id=target.snapshot.id))
        target.prepare()
        applied, planned, warnings = _write(vault, target, request, run, lock, confirm,
                                            reporter or NullReporter())
        duration = time.monotonic() - started
        plan, report, id_map = target.report(planned, applied, duration, warnings)
        run.record(reported_event(run.job_id, target.snapshot, target.where, plan, report,
                                  id_map))
        run.complete(ev.RestoreCompleted(
            job_id=run.job_id, snapshot_id=target.snapshot.id, target=target.where,
            files_restored=applied.items, files_skipped=applied.skipped, dirs=applied.dirs,
            bytes_written=applied.bytes, duration_seconds=duration, errors=applied.problems))
    return RestoreOutcome(run.job_id, target.snapshot, request, duration, plan, applied,
                          report, warnings)


def _write(vault: Vault, target: RestoreTarget, request: RestoreRequest, run: JobRun,
           lock: object | None, confirm: Confirm | None, reporter: ProgressReporter
           ) -> tuple[Applied, Planned | None, list[dict[str, Any]]]:
    """Plan, confirm, pre_hook, plan again, safety copy, write or roll back, post_hook."""
    warnings = list(target.warnings)
    asking = confirm is not None or request.safety_copy  # else a source need not plan
    planned = target.plan(asking=asking)
    confirmed = _ask(confirm, target.where, planned)
    hooks = RestoreHooks(vault.config.restore if request.hooks else _NO_HOOKS, run.record,
                         job_id=run.job_id, target=target.where,
                         snapshot_id=target.snapshot.id)
    try:
        hooks.pre()
        if hooks.pre_ran:  # the writers were running until now: plan what is there
            planned = target.plan(asking=asking)
            if not confirmed:
                _ask(confirm, target.where, planned)
        undo = None
        if request.safety_copy and planned is not None and planned.destructive:
            undo = target.safety_copy(planned, run.job_id, lock)
        applied = write_or_roll_back(vault, run.job_id, undo,
                                     _applier(target, planned,
                                              MultiReporter(reporter, run.progress()),
                                              run.job_id))
        warnings.extend(applied.warnings)
    except BaseException:
        hooks.post("failed")  # the writers come back either way
        raise
    post = hooks.post("completed")
    if post is not None:
        warnings.append(post)
    return applied, planned, warnings


def _applier(target: RestoreTarget, planned: Planned | None, reporter: ProgressReporter,
             job_id: str) -> Callable[[], Applied]:
    return lambda: target.apply(planned, reporter, job_id)


_NO_HOOKS = RestoreConfig()


def _ask(confirm: Confirm | None, where: str, planned: Planned | None) -> bool:
    """Ask `confirm` about a destructive plan; whether it was asked (and said yes)."""
    if planned is None or not planned.destructive or confirm is None or planned.conflicted:
        return False
    confirm(where, planned.summary)
    return True


def reported_event(job_id: str, snapshot: Snapshot, target: str, plan: RestorePlan,
                   report: RestoreReport,
                   id_map: dict[str, dict[str, str]] | None = None) -> ev.RestoreReported:
    """The journal's copy of a restore's report (files and databases alike)."""
    return ev.RestoreReported(
        job_id=job_id, snapshot_id=snapshot.id, target=target, mode=plan.mode,
        on_conflict=plan.on_conflict,
        groups=[ev.RestoreGroupCounts(group=group, **counts)
                for group, counts in report.groups.items()],
        **report.totals, bytes_written=report.bytes_written,
        duration_seconds=report.duration_seconds, warnings=report.warnings,
        id_map=id_map or {})
