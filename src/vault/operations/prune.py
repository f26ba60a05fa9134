"""The prune operation: garbage-collect the repository next to running backups, journaled.

Prune holds a *shared* lock (backups, restores and verifies go on) and refuses to run next
to another prune. Steps and their safety argument: docs/prune.md and repository/gc.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vault.errors import RepositoryLocked
from vault.foundation.progress import MultiReporter, ProgressCounter, ProgressReporter
from vault.journal import events as ev
from vault.operations.common import remove_temp_debris, repository_lock
from vault.operations.quota import record_storage_usage
from vault.repository.gc import (
    Collector,
    PrunePlan,
    pack_usage,
    plan_prune,
    refuse_missing_packs,
)
from vault.repository.lock import RepositoryLock, list_locks
from vault.repository.repository import Repository
from vault.runtime.app import Vault
from vault.runtime.jobrun import JobRun


@dataclass
class PruneRequest:
    max_unused: float = 0.05
    dry_run: bool = False


@dataclass
class PruneReport:
    dry_run: bool
    snapshots: int
    packs_kept: int
    packs_repacked: int
    packs_condemned: int
    blobs_removed: int
    estimated_bytes_freed: int
    packs_written: int = 0
    bytes_written: int = 0
    packs_deleted: int = 0
    bytes_deleted: int = 0
    packs_rescued: int = 0
    condemned_pending: int = 0
    condemned_pending_bytes: int = 0
    packs_recovered: int = 0
    temp_files_removed: int = 0  # killed saves' debris, past repository.temp_file_lease
    job_id: str | None = None

    @property
    def bytes_freed(self) -> int:
        """What this run gave back: packs removed minus packs written (negative when the
        deletion of what it condemned waits for a later run)."""
        return self.bytes_deleted - self.bytes_written


def _report(plan: PrunePlan, snapshots: int, dry_run: bool) -> PruneReport:
    return PruneReport(dry_run=dry_run, snapshots=snapshots, packs_kept=len(plan.keep),
                       packs_repacked=len(plan.repack), packs_condemned=len(plan.condemned),
                       blobs_removed=plan.blobs_removed,
                       estimated_bytes_freed=plan.estimated_bytes_freed)


def _counters(reporter: ProgressReporter) -> Callable[[str], ProgressCounter]:
    return lambda phase: ProgressCounter(reporter, phase)


def _live_locks(repo: Repository, mine: RepositoryLock) -> Callable[[], set[str]]:
    def live() -> set[str]:
        return {info.lock_id for info in list_locks(repo.storage)
                if info.state != "stale" and info.lock_id != mine.info.lock_id}
    return live


def _refuse_second_prune(repo: Repository, mine: RepositoryLock) -> None:
    """Our lock is written before we list: of two racing prunes, at least one sees the
    other (both may back off; neither proceeds next to the other)."""
    for info in list_locks(repo.storage):
        if info.operation == "prune" and info.state != "stale" \
                and info.lock_id != mine.info.lock_id:
            raise RepositoryLocked(repo=repo.location, holder=info.holder,
                                   since=info.created.isoformat(timespec="seconds"))


def run_prune(vault: Vault, req: PruneRequest, reporter: ProgressReporter,
              job_id: str | None = None) -> PruneReport:
    repo = vault.repository()
    if req.dry_run:
        return _dry_run(vault, repo, req, reporter)
    run = JobRun.start(vault.journal, "prune", job_id, repository=repo.location,
                       max_unused=req.max_unused, dry_run=False)
    started = time.monotonic()
    with run, repository_lock(vault, repo, exclusive=False, operation="prune") as lock:
        _refuse_second_prune(repo, lock)
        run.record(ev.PruneStarted(job_id=run.job_id, repo_id=repo.id))
        repo.load_index()
        if repo.index_errors:
            raise repo.index_errors[0]
        temp_files = remove_temp_debris(vault, repo)
        collector = Collector(
            repo, job_id=run.job_id, pack_size=vault.config.repository.pack_size_mib << 20,
            live_locks=_live_locks(repo, lock), check_lock=lock.check,
            progress=_counters(MultiReporter(reporter, run.progress())))
        plan = collector.run(req.max_unused)
        report = _finish(_report(plan, len(collector.scanner.seen_snapshots), False),
                         collector, run.job_id)
        report.temp_files_removed = temp_files
        run.complete(_completed(repo, report, time.monotonic() - started))
    record_storage_usage(vault, repo)
    return report


def _dry_run(vault: Vault, repo: Repository, req: PruneRequest,
             reporter: ProgressReporter) -> PruneReport:
    """Plan only: no lock, no journal, nothing written (missing packs refused all the
    same, but not recorded)."""
    repo.load_index()
    recovered = repo.unindexed_packs()
    refuse_missing_packs(repo, None)
    collector = Collector(repo, job_id="dry-run", pack_size=0, live_locks=set,
                          check_lock=lambda: None, progress=_counters(reporter))
    used = collector.scan(rescue=False)
    plan = plan_prune(pack_usage(repo.index, used).values(), req.max_unused)
    report = _report(plan, len(collector.scanner.seen_snapshots), True)
    report.condemned_pending, report.condemned_pending_bytes = collector.pending()
    report.packs_recovered = len(recovered)
    return report


def _finish(report: PruneReport, collector: Collector, job_id: str) -> PruneReport:
    s = collector.stats
    report.packs_written, report.bytes_written = s.packs_written, s.bytes_written
    report.packs_deleted, report.bytes_deleted = s.packs_deleted, s.bytes_deleted
    report.packs_rescued, report.packs_recovered = s.packs_rescued, s.packs_recovered
    report.condemned_pending, report.condemned_pending_bytes = collector.pending()
    report.job_id = job_id
    return report


def _completed(repo: Repository, r: PruneReport, seconds: float) -> ev.PruneCompleted:
    assert r.job_id is not None
    return ev.PruneCompleted(
        job_id=r.job_id, repo_id=repo.id, snapshots=r.snapshots, packs_kept=r.packs_kept,
        packs_repacked=r.packs_repacked, packs_condemned=r.packs_condemned,
        packs_written=r.packs_written, bytes_written=r.bytes_written,
        packs_deleted=r.packs_deleted, bytes_deleted=r.bytes_deleted,
        bytes_freed=r.bytes_freed, blobs_removed=r.blobs_removed,
        packs_rescued=r.packs_rescued, condemned_pending=r.condemned_pending,
        condemned_pending_bytes=r.condemned_pending_bytes, duration_seconds=seconds)
