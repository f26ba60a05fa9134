"""Restoring a database or settings snapshot through its source.

The snapshot says what the source was (`snapshot.source`: type, name, the URL of an ad-hoc
source without its password); the source is rebuilt from the configuration when a source
of that name and type is configured (so its password reference is used), else from that
URL (passwords then come from the environment, e.g. PGPASSWORD).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from vault.app import Vault
from vault.errors import UsageError
from vault.jobrun import JobRun
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.operations.restore_undo import database_safety_copy, plan_is_destructive, rollback
from vault.operations.source_backup import sealer_for
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.restore.items import SnapshotItems
from vault.sources.base import Source, SourceRestoreRequest, SourceRestoreResult
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
    safety_copy: bool = True  # back up what a destructive restore changes, for undo


@dataclass
class SourceRestoreOutcome:
    job_id: str
    snapshot: Snapshot
    result: SourceRestoreResult
    duration_seconds: float


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
        remap_ids=req.remap_ids, dry_run=req.dry_run)


def _destructive(source: Source, stored: SnapshotItems,
                 request: SourceRestoreRequest) -> bool:
    """Whether the restore will change or delete records the target holds: asked of the
    source's own plan (a dry run); whole-table/file swaps (`replace`) always are, and
    restores into a new target never."""
    if request.mode == "replace":
        return True
    if request.plan_mode == "new-target":
        return False
    planned = source.restore(stored, replace(request, dry_run=True))
    return plan_is_destructive(planned.details.get("plan"))


def run_source_restore(vault: Vault, req: SourceRestore,
                       job_id: str | None = None) -> SourceRestoreOutcome:
    repo = vault.repository()
    snapshot = repo.find_snapshot(req.snapshot_ref.partition(":")[0])
    if not is_source_snapshot(snapshot):
        raise UsageError(f"snapshot {snapshot.short_id} is of files: restore it with --target DIR")
    source = source_of(vault, snapshot, req.target)
    if req.dry_run:  # plan only: no lock, no journal, nothing written
        repo.load_index()
        started = time.monotonic()
        result = source.restore(SnapshotItems(repo, snapshot), _request(vault, repo, req))
        return SourceRestoreOutcome("", snapshot, result, time.monotonic() - started)
    target_text = req.target or "(the source's own location)"
    run = JobRun.start(vault.journal, "restore", job_id, repository=repo.location,
                       snapshot_ref=req.snapshot_ref, target=target_text,
                       paths=list(req.only or []), include=[], exclude=[],
                       options={"mode": req.mode, "source_type": source.type,
                                "query": req.query is not None,
                                "on_conflict": req.on_conflict, "remap_ids": req.remap_ids})
    started = time.monotonic()
    with run, repository_lock(vault, repo, exclusive=False, operation="restore"):
        run.record(ev.RestoreStarted(job_id=run.job_id, snapshot_id=snapshot.id))
        repo.load_index()
        stored = SnapshotItems(repo, snapshot)
        request = _request(vault, repo, req)
        undo = None
        if req.safety_copy and _destructive(source, stored, request):
            undo = database_safety_copy(vault, source, str(snapshot.source.get("label")),
                                        request, stored, run.job_id, snapshot.id)
        try:
            result = source.restore(stored, request)
        except BaseException as exc:
            if undo is not None:
                rollback(vault, run.job_id, exc)
            raise
        duration = time.monotonic() - started
        run.complete(ev.RestoreCompleted(
            job_id=run.job_id, snapshot_id=snapshot.id, target=target_text,
            files_restored=result.items, files_skipped=0, dirs=0,
            bytes_written=result.bytes, duration_seconds=duration, errors=[]))
    return SourceRestoreOutcome(run.job_id, snapshot, result, duration)
