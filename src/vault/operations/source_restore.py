"""Restoring a database or settings snapshot through its source.

The snapshot says what the source was (`snapshot.source`: type, name, the URL of an ad-hoc
source without its password); the source is rebuilt from the configuration when a source
of that name and type is configured (so its password reference is used), else from that
URL (passwords then come from the environment, e.g. PGPASSWORD).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from vault.config.model import RestoreConfig
from vault.errors import UsageError
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.operations.restore import reported_event
from vault.operations.restore_checks import Confirm, check_before_restore, warning_text
from vault.operations.restore_undo import (
    database_safety_copy,
    plan_is_destructive,
    write_or_roll_back,
)
from vault.operations.source_backup import sealer_for
from vault.planning.restore_plan import RestorePlan, default_on_conflict
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.restore.hooks import RestoreHooks
from vault.restore.items import SnapshotItems
from vault.restore.report import build_report
from vault.runtime.app import Vault
from vault.runtime.jobrun import JobRun
from vault.sources.base import Source, SourceRestoreRequest, SourceRestoreResult
from vault.sources.entities import check_copy_mode
from vault.sources.registry import source_from_config, source_from_url


@dataclass
class SourceRestore:
    snapshot_ref: str
    target: str | None = None  # None: the source's own location
    only: list[str] | None = None
    query: dict[str, Any] | None = None
    mode: Literal["new", "replace", "overwrite", "merge", "new-target"] = "new"
    on_conflict: Literal["skip", "overwrite", "rename", "fail"] | None = None
    dry_run: bool = False
    remap_ids: bool = False  # an entity restored as a new copy: new ids, references kept
    # --rename FIELD=VALUE: the copy's top rows take these values (a new project name)
    rename: dict[str, str] = field(default_factory=dict)
    safety_copy: bool = True  # back up what a destructive restore changes, for undo
    confirm: Confirm | None = None  # asked before a destructive plan is carried out
    hooks: bool = True  # run the [restore] pre_hook/post_hook


@dataclass
class SourceRestoreOutcome:
    job_id: str
    snapshot: Snapshot
    result: SourceRestoreResult
    duration_seconds: float
    #: warning records ({"kind": "older_version", ...}, {"kind": "post_hook_failed", ...})
    warnings: list[dict[str, Any]] = field(default_factory=list)


def is_source_snapshot(snapshot: Snapshot) -> bool:
    return str(snapshot.source.get("type", "files")) != "files"


def source_of(vault: Vault, snapshot: Snapshot, target: str | None = None) -> Source:
    """The source a snapshot was taken of, able to restore it: the configured source of
    that name and type, else the snapshot's own URL, else (an imported dump, which has
    none) a target given as a URL of the same kind."""
    record = snapshot.source
    source_type, name = record.get("type"), record.get("name")
    for entry in vault.config.sources:
        if entry.name == name and entry.type == source_type:
            return source_from_config(entry)
    url = record.get("url")
    if isinstance(url, str):
        source = source_from_url(url)
        if source is not None:
            return source
    if target is not None and "://" in target:
        by_target = source_from_url(target)
        if by_target is not None and by_target.type == source_type:
            return by_target
    raise UsageError(f"snapshot {snapshot.short_id} is of {source_type} source {name!r}, "
                     "which is not configured here: add it to [[sources]], or give --target "
                     "as a URL of that kind, to restore it")


def _request(vault: Vault, repo: Repository, req: SourceRestore) -> SourceRestoreRequest:
    scratch = vault.cache_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SourceRestoreRequest(
        target=req.target, only=tuple(req.only or ()), query=req.query, mode=req.mode,
        sealer=sealer_for(repo), scratch_dir=str(scratch), on_conflict=req.on_conflict,
        remap_ids=req.remap_ids, rename=tuple(req.rename.items()), dry_run=req.dry_run)


def _reported(job_id: str, snapshot: Snapshot, target: str, request: SourceRestoreRequest,
              result: SourceRestoreResult, duration: float,
              warnings: list[dict[str, Any]]) -> ev.RestoreReported:
    """A database restore's report, from the plan its source carried out (all or
    nothing: one transaction, so nothing counts as failed); a whole-file or whole-database
    swap has no per-record plan and reports what it wrote."""
    doc = result.details.get("plan")
    if isinstance(doc, dict) and "items" in doc:
        plan = RestorePlan.from_json(doc)
    else:
        plan = RestorePlan(mode=request.plan_mode,
                           on_conflict=request.on_conflict
                           or default_on_conflict(request.plan_mode))
    report = build_report(plan, [], duration_seconds=duration,
                          warnings=[warning_text(w) for w in warnings])
    if not plan.items:
        report.totals["restored"] = result.items
    report.bytes_written = result.bytes
    id_map = {str(group): {str(old): str(new) for old, new in ids.items()}
              for group, ids in (result.details.get("id_map") or {}).items()}
    return reported_event(job_id, snapshot, target, plan, report, id_map)


def destructive_plan(source: Source, stored: SnapshotItems,
                     request: SourceRestoreRequest) -> dict[str, Any] | None:
    """The source's plan (`RestorePlan.to_json()`, from a dry run) when carrying it out
    will change or delete records the target holds, else None. Whole-table/file swaps
    (`replace`) always are destructive, restores into a new target never."""
    if request.mode == "replace":
        return {"mode": "replace", "destructive": True}
    if request.plan_mode == "new-target":
        return None
    planned = source.restore(stored, replace(request, dry_run=True)).details.get("plan")
    return planned if plan_is_destructive(planned) and isinstance(planned, dict) else None


def _ask(req: SourceRestore, target: str, plan: dict[str, Any] | None) -> None:
    """Confirm a destructive plan; one with conflicts under --on-conflict fail is left to
    the source, which refuses it (the clearer error) before writing anything."""
    if plan is None or req.confirm is None:
        return
    if plan.get("totals", {}).get("conflict"):
        return
    req.confirm(target, {k: v for k, v in plan.items() if k != "items"})


def run_source_restore(vault: Vault, req: SourceRestore,
                       job_id: str | None = None) -> SourceRestoreOutcome:
    check_copy_mode(req.remap_ids, req.mode)
    if req.rename and not (req.remap_ids and req.query):
        raise UsageError("--rename FIELD=VALUE names a new copy of an entity: give it with "
                         "--new-ids and --query '{\"entity\": NAME, \"ids\": [...]}'")
    repo = vault.repository()
    snapshot = repo.find_snapshot(req.snapshot_ref.partition(":")[0])
    if not is_source_snapshot(snapshot):
        raise UsageError(f"snapshot {snapshot.short_id} is of files: restore it with --target DIR")
    source = source_of(vault, snapshot, req.target)
    warnings = check_before_restore(repo, snapshot)  # before any job, lock or write
    if req.dry_run:  # plan only: no lock, no journal, nothing written
        repo.load_index()
        started = time.monotonic()
        result = source.restore(SnapshotItems(repo, snapshot), _request(vault, repo, req))
        if req.rename:
            result.details["renamed"] = dict(req.rename)
        return SourceRestoreOutcome("", snapshot, result, time.monotonic() - started,
                                    warnings)
    target_text = req.target or "(the source's own location)"
    run = JobRun.start(vault.journal, "restore", job_id, repository=repo.location,
                       snapshot_ref=req.snapshot_ref, target=target_text,
                       paths=list(req.only or []), include=[], exclude=[],
                       options={"mode": req.mode, "source_type": source.type,
                                "query": req.query is not None,
                                "on_conflict": req.on_conflict, "remap_ids": req.remap_ids,
                                "rename": sorted(req.rename)})
    started = time.monotonic()
    with run, repository_lock(vault, repo, exclusive=False, operation="restore"):
        run.record(ev.RestoreStarted(job_id=run.job_id, snapshot_id=snapshot.id))
        repo.load_index()
        stored = SnapshotItems(repo, snapshot)
        request = _request(vault, repo, req)
        asking = req.confirm is not None or req.safety_copy
        destructive = destructive_plan(source, stored, request) if asking else None
        _ask(req, target_text, destructive)
        hooks = RestoreHooks(vault.config.restore if req.hooks else RestoreConfig(),
                             run.record, job_id=run.job_id, target=target_text,
                             snapshot_id=snapshot.id)
        try:
            hooks.pre()
            if hooks.pre_ran and asking:  # the writers ran until now: look again
                confirmed = destructive is not None
                destructive = destructive_plan(source, stored, request)
                if not confirmed:
                    _ask(req, target_text, destructive)
            undo = None
            if req.safety_copy and destructive is not None:
                undo = database_safety_copy(vault, source, str(snapshot.source.get("label")),
                                            request, stored, run.job_id, snapshot.id)
            result = write_or_roll_back(vault, run.job_id, undo,
                                        lambda: source.restore(stored, request))
        except BaseException:
            hooks.post("failed")  # the writers come back either way
            raise
        post = hooks.post("completed")
        if post is not None:
            warnings.append(post)
        if req.rename:
            result.details["renamed"] = dict(req.rename)
        duration = time.monotonic() - started
        run.record(_reported(run.job_id, snapshot, target_text, request, result, duration,
                             warnings))
        run.complete(ev.RestoreCompleted(
            job_id=run.job_id, snapshot_id=snapshot.id, target=target_text,
            files_restored=result.items, files_skipped=0, dirs=0,
            bytes_written=result.bytes, duration_seconds=duration, errors=[]))
    return SourceRestoreOutcome(run.job_id, snapshot, result, duration, warnings)
