"""A database or settings snapshot as a target of the restore pipeline
(`operations.restore`): written through its source's `plan_restore` and `apply`.

The snapshot says what the source was (`snapshot.source`: type, name, the URL of an ad-hoc
source without its password); the source is rebuilt from the configuration when a source
of that name and type is configured (so its password reference is used), else from that
URL (passwords then come from the environment, e.g. PGPASSWORD).

A source writes in one transaction (all or nothing), planning again inside it: the plan
made here is what the operator confirms and what decides on a safety copy.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from vault.errors import UsageError
from vault.foundation.progress import ProgressReporter
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.operations.restore_checks import check_before_restore, warning_text
from vault.operations.restore_target import Applied, Planned
from vault.operations.restore_undo import database_safety_copy
from vault.operations.source_backup import sealer_for
from vault.planning.restore_plan import RestorePlan, default_on_conflict
from vault.planning.restore_request import RestoreMode, RestoreRequest
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.snapshot_ref import SnapshotCriteria
from vault.restore.items import SnapshotItems
from vault.restore.report import RestoreReport, build_report
from vault.restore.snapshot_path import split_ref
from vault.runtime.app import Vault
from vault.sources.base import Source, SourceRestoreRequest, SourceRestoreResult
from vault.sources.registry import source_from_config, source_from_url

#: how a restore into the place a database was taken from is journaled and confirmed
OWN_LOCATION = "(the source's own location)"


def find_restore_snapshot(repo: Repository, request: RestoreRequest) -> Snapshot:
    """The snapshot a request names (`latest:sub/dir`: the newest holding sub/dir)."""
    ref, inside = split_ref(request.snapshot_ref)
    return repo.find_snapshot(ref, SnapshotCriteria(path=inside if inside != "/" else None))


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


class SourceTarget:
    """A database (or settings file) restored from its source's snapshot."""

    def __init__(self, vault: Vault, repo: Repository, snapshot: Snapshot,
                 request: RestoreRequest) -> None:
        # The request's own rules (`check_copy`) were checked before the repository was
        # opened; those of the front ends (`check_request`: --settings, PATHS, ...) by them.
        self.vault, self.repo, self.snapshot, self.request = vault, repo, snapshot, request
        self.source = source_of(vault, snapshot, request.target)
        self.where = request.target or OWN_LOCATION
        self.warnings = check_before_restore(repo, snapshot)  # before any job, lock or write
        self.stored = SnapshotItems(repo, snapshot)

    def source_request(self) -> SourceRestoreRequest:
        scratch = self.vault.cache_dir / "scratch"
        scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        req = self.request
        return SourceRestoreRequest(
            target=req.target, only=tuple(req.only), query=req.query,
            mode=req.source_mode.value, sealer=sealer_for(self.repo),
            scratch_dir=str(scratch), on_conflict=req.on_conflict, remap_ids=req.remap_ids,
            rename=tuple(req.rename.items()), dry_run=req.dry_run)

    def job_fields(self) -> dict[str, Any]:
        req = self.request
        return {"target": self.where, "paths": list(req.only), "include": [], "exclude": [],
                "options": {"mode": req.source_mode.value, "source_type": self.source.type,
                            "query": req.query is not None, "on_conflict": req.on_conflict,
                            "remap_ids": req.remap_ids, "rename": sorted(req.rename)}}

    def lock(self) -> AbstractContextManager[object | None]:
        return repository_lock(self.vault, self.repo, exclusive=False, operation="restore")

    def prepare(self) -> None:
        self.repo.load_index()

    def plan(self, *, asking: bool) -> Planned | None:
        """What confirming and the safety copy go by (None when nobody asks and no copy
        is kept). A whole swap (`replace`) always is destructive, a new target never."""
        mode = self.request.source_mode
        if not asking or mode is RestoreMode.NEW_TARGET:
            return None
        if mode is RestoreMode.REPLACE:
            return Planned(None, True, {"mode": "replace", "destructive": True})
        plan = self.source.plan_restore(self.stored, self.source_request())
        return Planned(plan, plan.destructive, plan.to_json(items=False))

    def safety_copy(self, planned: Planned | None, job_id: str,
                    lock: object | None) -> ev.RestoreUndoable | None:
        return database_safety_copy(self.vault, self.source,
                                    str(self.snapshot.source.get("label")),
                                    self.source_request(), self.stored, job_id,
                                    self.snapshot.id)

    def apply(self, planned: Planned | None, reporter: ProgressReporter,
              job_id: str) -> Applied:
        return self._applied(self.source.apply(self.stored, self.source_request()))

    def _applied(self, result: SourceRestoreResult) -> Applied:
        if self.request.rename:
            result.details["renamed"] = dict(self.request.rename)
        return Applied(items=result.items, bytes=result.bytes, result=result)

    def report(self, planned: Planned | None, applied: Applied, duration: float,
               warnings: list[dict[str, Any]]
               ) -> tuple[RestorePlan, RestoreReport, dict[str, dict[str, str]]]:
        """The report of the plan the source carried out (all or nothing: one
        transaction, so nothing counts as failed); a whole-file or whole-database swap
        has no per-record plan and reports what it wrote."""
        result = applied.result
        assert result is not None
        mode = self.request.source_mode.plan_mode
        plan = result.plan or RestorePlan(
            mode=mode, on_conflict=self.request.on_conflict or default_on_conflict(mode))
        report = build_report(plan, [], duration_seconds=duration,
                              warnings=[warning_text(w) for w in warnings])
        if not plan.items:
            report.totals["restored"] = result.items
        report.bytes_written = result.bytes
        id_map = {str(group): {str(old): str(new) for old, new in ids.items()}
                  for group, ids in (result.details.get("id_map") or {}).items()}
        return plan, report, id_map

    def confirmation(self) -> Planned | None:
        self.prepare()
        return self.plan(asking=True)

    def preview(self) -> tuple[Planned | None, Applied, RestoreReport | None]:
        """The source's dry run: it plans (and for a new target, writes into scratch
        space only), nothing is journaled."""
        self.repo.load_index()
        result = self.source.restore(self.stored, self.source_request())
        plan = result.plan
        planned = Planned(plan, plan.destructive, plan.to_json(items=False)) if plan else None
        return planned, self._applied(result), None
