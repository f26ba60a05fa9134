"""The restore operation for file snapshots: check, select, plan, confirm, write, report.

Before anything else the snapshot is checked (format/version compatibility, every tree
and blob the selection needs present: `restore_checks`). A dry run then plans and returns
(no lock, no job, nothing written); a real restore plans again under the repository lock,
refuses a plan with conflicts (`--on-conflict fail`), asks `req.confirm` when the plan is
destructive, runs the `[restore]` pre_hook (a failure aborts; the plan is made again
afterwards, as the paused writers may have changed the target), carries out exactly that
plan, runs the post_hook (also after a failure) and journals its report.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from vault.config.model import RestoreConfig
from vault.errors import SafetyCopyImpossible, SnapshotNotFound, UsageError
from vault.foundation.progress import MultiReporter, ProgressCounter, ProgressReporter
from vault.journal import events as ev
from vault.operations.common import record_read_damage
from vault.operations.readonly_lock import read_only_lock
from vault.operations.restore_checks import Confirm, check_before_restore, warning_text
from vault.operations.restore_undo import files_safety_copy, write_or_roll_back
from vault.planning.restore_plan import MODES, Mode, OnConflict, RestorePlan
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.snapshot_ref import SnapshotCriteria
from vault.repository.tree import same_name
from vault.restore.files import FileRestorer, OverwritePolicy, RestoreStats
from vault.restore.files_plan import (
    FilesPlan,
    TargetNotEmptyError,
    holds_anything,
    plan_files,
    refuse_conflicts,
)
from vault.restore.hooks import RestoreHooks
from vault.restore.report import RestoreReport, build_report
from vault.restore.selection import Selection
from vault.runtime.app import Vault
from vault.runtime.jobrun import JobRun

#: the first names of two modes (as database restores still spell them)
_MODE_ALIASES: dict[str, Mode] = {"new": "new-target", "replace": "overwrite"}


@dataclass(frozen=True)
class FilesPolicy:
    mode: Mode
    on_conflict: OnConflict
    trust_mtime: bool = False  # the old `--overwrite if-changed`


def files_policy(mode: str | None, on_conflict: OnConflict | None,
                 overwrite: OverwritePolicy | None) -> FilesPolicy:
    """The mode and conflict policy a file restore runs with.

    `--overwrite` (deprecated) maps onto merge: always = overwrite what differs, if-changed
    = the same but equal size and mtime count as unchanged, never = skip. With nothing
    given a file restore merges and overwrites what differs (what it always did)."""
    if overwrite is not None:
        if mode is not None or on_conflict is not None:
            raise UsageError("--overwrite is the old spelling of --mode/--on-conflict: "
                             "give one or the other")
        return FilesPolicy("merge", "skip" if overwrite == "never" else "overwrite",
                           trust_mtime=overwrite == "if-changed")
    if mode is None:
        return FilesPolicy("merge", on_conflict or "overwrite")
    resolved = _MODE_ALIASES.get(mode, mode)
    if resolved not in MODES:
        raise UsageError(f"unknown restore mode {mode!r}: choose overwrite, merge or new-target")
    default: OnConflict = "skip" if resolved == "merge" else "overwrite"
    return FilesPolicy(resolved, on_conflict or default)


@dataclass
class RestoreRequest:
    snapshot_ref: str  # "latest", an id prefix, optionally ":subdir"
    target: str
    paths: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    overwrite: OverwritePolicy | None = None  # deprecated: see `files_policy`
    dry_run: bool = False
    threads: int = 4
    mode: str | None = None  # overwrite | merge | new-target (or new | replace)
    on_conflict: OnConflict | None = None
    safety_copy: bool = True  # back up what a destructive restore changes, for undo
    confirm: Confirm | None = None  # asked before a destructive plan is carried out
    hooks: bool = True  # run the [restore] pre_hook/post_hook (not for an undo)

    def policy(self) -> FilesPolicy:
        return files_policy(self.mode, self.on_conflict, self.overwrite)


@dataclass
class RestoreOutcome:
    job_id: str | None
    snapshot: Snapshot
    stats: RestoreStats  # for a dry run: what the plan predicts
    duration_seconds: float
    plan: RestorePlan  # the plan carried out (or, dry, that would be)
    report: RestoreReport
    #: warning records ({"kind": "older_version", ...}, {"kind": "post_hook_failed", ...})
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def created(self) -> list[str]:
        return self.stats.created

    @property
    def overwritten(self) -> list[str]:
        return self.stats.overwritten

    @property
    def deleted(self) -> list[str]:
        return self.stats.deleted


def split_ref(ref: str) -> tuple[str, str]:
    """"abc123:srv/app" -> ("abc123", "/srv/app"); "latest" -> ("latest", "/")."""
    snap, _, sub = ref.partition(":")
    return snap, "/" + sub.strip("/")


def resolve_subtree(repo: Repository, snapshot: Snapshot, path: str) -> bytes:
    """The tree id at `path` inside a snapshot."""
    tree = bytes.fromhex(snapshot.tree)
    for part in [p for p in path.split("/") if p]:
        match = [n for n in repo.load_tree(tree) if same_name(n.name, part)]
        if not match or match[0].type != "dir" or match[0].subtree is None:
            raise SnapshotNotFound(ref=f"{snapshot.short_id}:{path}", repo=repo.location)
        tree = match[0].subtree
    return tree


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


def run_restore(vault: Vault, req: RestoreRequest, reporter: ProgressReporter,
                job_id: str | None = None) -> RestoreOutcome:
    if not req.target:
        raise UsageError("give a --target directory to restore into")
    policy = req.policy()
    ref, sub = split_ref(req.snapshot_ref)
    repo = vault.repository()
    # `latest:sub/dir` is the newest snapshot holding sub/dir (vault.repository.snapshot_ref)
    snapshot = repo.find_snapshot(ref, SnapshotCriteria(path=sub if sub != "/" else None))
    target = os.path.abspath(req.target)
    if os.path.lexists(target) and not os.path.isdir(target):
        raise UsageError(f"restore target {target} exists and is not a directory")
    if policy.mode == "new-target" and holds_anything(target):
        raise TargetNotEmptyError(target=target)
    selection = Selection(
        paths=tuple(os.path.join(sub, p.lstrip("/")) if sub != "/" else "/" + p.lstrip("/")
                    for p in req.paths),
        includes=tuple(req.includes), excludes=tuple(req.excludes))
    # Checked from the root (a damaged tree on the way to `sub` is as fatal as one below).
    warnings = check_before_restore(repo, snapshot, selection=Selection(
        paths=selection.paths or ((sub,) if sub != "/" else ()),
        includes=selection.includes, excludes=selection.excludes))
    subtree = resolve_subtree(repo, snapshot, sub)
    started = time.monotonic()

    def plan() -> FilesPlan:
        repo.load_index()
        return plan_files(repo, subtree, sub, target, selection,
                          mode=policy.mode, on_conflict=policy.on_conflict,
                          snapshot_short_id=snapshot.short_id,
                          trust_mtime=policy.trust_mtime)

    if req.dry_run:
        planned = plan()
        duration = time.monotonic() - started
        stats = predicted_stats(planned)
        return RestoreOutcome(None, snapshot, stats, duration, planned.plan, build_report(
            planned.plan, (), duration_seconds=duration,
            warnings=[f"{p}: {e}" for p, e in planned.refused]), warnings)
    run = JobRun.start(vault.journal, "restore", job_id, repository=repo.location,
                       snapshot_ref=req.snapshot_ref, target=target, paths=req.paths,
                       include=req.includes, exclude=req.excludes,
                       options={"overwrite": req.overwrite, "mode": policy.mode,
                                "on_conflict": policy.on_conflict})
    with run, read_only_lock(vault, repo, operation="restore") as lock:
        run.record(ev.RestoreStarted(job_id=run.job_id, snapshot_id=snapshot.id))
        planned = plan()
        refuse_conflicts(planned)  # before anything is written
        confirmed = _confirm(req, target, planned.plan, confirmed=False)
        hooks = RestoreHooks(vault.config.restore if req.hooks else _NO_HOOKS, run.record,
                             job_id=run.job_id, target=target, snapshot_id=snapshot.id)
        try:
            hooks.pre()
            if hooks.pre_ran:  # the writers were running until now: plan what is there
                planned = plan()
                refuse_conflicts(planned)
                _confirm(req, target, planned.plan, confirmed=confirmed)
            undo = None
            if req.safety_copy and planned.plan.destructive:
                if lock is None:  # the repository cannot be written: nor the copy
                    raise SafetyCopyImpossible(repo=repo.location, target=target)
                undo = files_safety_copy(vault, planned, run.job_id, snapshot.id)
            progress = MultiReporter(reporter, run.progress())
            restorer = FileRestorer(repo, planned, ProgressCounter(progress, "restore"),
                                    threads=req.threads)
            stats = write_or_roll_back(vault, run.job_id, undo, restorer.run)
            unrecorded = record_read_damage(repo, "restore", run.job_id, snapshot.id,
                                            [p.path for p in stats.problems])
            if unrecorded:
                warnings.append({"kind": "damage_not_recorded", "detail": unrecorded})
        except BaseException:
            hooks.post("failed")  # the writers come back either way
            raise
        post = hooks.post("completed")
        if post is not None:
            warnings.append(post)
        duration = time.monotonic() - started
        report = build_report(planned.plan, stats.failed_keys, duration_seconds=duration,
                              warnings=[f"{p.path}: {p.error}" for p in stats.problems]
                              + [warning_text(w) for w in warnings])
        run.record(reported_event(run.job_id, snapshot, target, planned.plan, report))
        run.complete(ev.RestoreCompleted(
            job_id=run.job_id, snapshot_id=snapshot.id, target=target,
            files_restored=stats.files_restored, files_skipped=stats.files_skipped,
            dirs=stats.dirs, bytes_written=stats.bytes_written, duration_seconds=duration,
            errors=[ev.FileProblem(path=p.path, error=p.error) for p in stats.problems]))
    return RestoreOutcome(run.job_id, snapshot, stats, duration, planned.plan, report,
                          warnings)


_NO_HOOKS = RestoreConfig()


def _confirm(req: RestoreRequest, target: str, plan: RestorePlan, *, confirmed: bool) -> bool:
    """Ask `req.confirm` about a destructive plan (once); whether it was asked and said
    yes."""
    if confirmed or not plan.destructive or req.confirm is None:
        return confirmed
    req.confirm(target, plan.to_json(items=False))
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
