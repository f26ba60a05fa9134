"""Backing up one database or settings source into a snapshot of its own.

The source's capture holds its consistent point in time (a read transaction, an exported
PostgreSQL snapshot) while the engine stores its items; the snapshot records what the
source is (`describe()`, never a secret) and what the capture saw (`meta`).
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vault.backup.items import ItemArchiver
from vault.foundation.progress import MultiReporter, ProgressCounter, ProgressReporter
from vault.journal import events as ev
from vault.operations.backup import BackupOutcome, completed_event, saved_by_job
from vault.operations.common import check_free_space, remove_temp_debris, repository_lock
from vault.operations.group_capture import HeldCapture, capture_context, held_capture
from vault.operations.group_capture import RepositorySealer as RepositorySealer  # re-export
from vault.operations.group_capture import sealer_for as sealer_for  # re-export
from vault.operations.journal_check import anchor_snapshot
from vault.operations.quota import (
    check_quota,
    keeping_written_packs,
    quota_guard,
    record_storage_usage,
)
from vault.repository.repository import vault_version
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import FileProblem, Snapshot
from vault.runtime.app import Vault
from vault.runtime.jobrun import JobRun
from vault.sources.base import Source


@dataclass
class SourceBackupRequest:
    source: Source
    label: str  # how snapshots name the source: its config name or its URL without password
    adhoc_url: str | None = None  # set for a source given as a URL (password removed)
    tags: list[str] = field(default_factory=list)
    group_id: str | None = None
    group_time: datetime | None = None
    threads: int = 2
    #: the capture its group opened with the others' (vault.operations.group_capture)
    held: HeldCapture | None = None

    def source_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"type": self.source.type, "name": self.source.name,
                                  "label": self.label, "describe": self.source.describe()}
        if self.adhoc_url:
            record["url"] = self.adhoc_url
        return record


def find_source_parent(snapshots: list[Snapshot], label: str,
                       source_type: str) -> Snapshot | None:
    host = socket.gethostname()
    same = [s for s in snapshots
            if s.host == host and s.paths == [label] and s.source.get("type") == source_type]
    return same[-1] if same else None


def run_source_backup(vault: Vault, req: SourceBackupRequest, reporter: ProgressReporter,
                      job_id: str | None = None) -> BackupOutcome:
    repo = vault.repository()
    source = req.source
    run = JobRun.start(vault.journal, "backup", job_id, repository=repo.location,
                       paths=[req.label], tags=req.tags, options={},
                       source_type=source.type, source=req.label, group_id=req.group_id)
    with run, repository_lock(vault, repo, exclusive=False, operation="backup") as lock:
        repo.load_index()
        snapshots = repo.snapshots()  # read once: the retry check and the parent
        earlier = saved_by_job(snapshots, job_id) if req.held is None else None
        if earlier is not None:  # a retried job whose snapshot an earlier attempt saved
            run.complete(completed_event(run.job_id, repo, earlier))
            return BackupOutcome(run.job_id, earlier, earlier.summary, earlier.errors)
        repo.recover_unindexed_packs()
        remove_temp_debris(vault, repo)  # what killed backups were writing
        # Packs found gone are remembered: their blobs are stored again from the source.
        repo.save_found_damage("backup", run.job_id)
        parent = find_source_parent(snapshots, req.label, source.type)
        run.record(ev.BackupStarted(job_id=run.job_id, repo_id=repo.id,
                                    parent=parent.id if parent else None))
        cfg = vault.config.repository
        saver = BlobSaver(repo, compression_level=cfg.compression_level,
                          pack_size=cfg.pack_size_mib << 20)
        counter = ProgressCounter(MultiReporter(reporter, run.progress()), "backup")
        problems: list[FileProblem] = req.held.problems if req.held else []
        context = capture_context(vault, repo, problems)
        estimate = source.estimate()
        counter.set_totals(estimate.bytes, estimate.items)
        # An estimate (docs/config.md#quotas): a database changes at about the same rate
        # from one backup to the next; a first backup may store all of it.
        expected = expected_stored_bytes(parent, estimate.bytes)
        check_free_space(vault, repo, expected)
        saver.budget = quota_guard(vault, repo, check_quota(vault, repo, expected))
        with keeping_written_packs(saver), \
                held_capture(source, context, problems, req.held) as held:
            assert held.capture is not None  # an unopened capture raised its error
            result = ItemArchiver(saver, counter, req.threads).store(held.capture.items)
            meta = dict(held.capture.meta)
            saver.flush()
        snapshot = Snapshot(
            time=datetime.now(UTC), host=socket.gethostname(), user=_user(), uid=os.getuid(),
            paths=[req.label], tags=sorted(set(req.tags)), tree=result.tree.hex(),
            parent=parent.id if parent else None, backup_type="full",
            status="partial" if problems else "completed",
            source={**req.source_record(), "meta": meta}, summary=result.summary,
            errors=problems, vault_version=vault_version(), job_id=run.job_id,
            group_id=req.group_id, group_time=req.group_time, captured_at=held.captured_at)
        lock.check()
        repo.save_snapshot(snapshot)
        run.complete(completed_event(run.job_id, repo, snapshot))
        anchor_snapshot(vault, repo, snapshot.id)
    storage_event = record_storage_usage(vault, repo)
    return BackupOutcome(run.job_id, snapshot, snapshot.summary, snapshot.errors,
                         storage_event=storage_event)


def expected_stored_bytes(previous: Snapshot | None, source_bytes: int | None) -> int:
    """What a source backup is expected to add to storage: as much as its previous
    snapshot stored anew, or (first backup) the source's own size estimate."""
    if previous is not None:
        return previous.summary.bytes_stored
    return source_bytes or 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@dataclass
class SourceEstimateReport:
    bytes_total: int | None
    items: int | None
    expected_new_bytes: int
    basis: str
    details: dict[str, Any]


def estimate_source(vault: Vault, source: Source, label: str) -> SourceEstimateReport:
    """The source's own size figures, and the new data the last snapshot of it added
    (a database changes at about the same rate from one backup to the next)."""
    found = source.estimate()
    repo = vault.repository()
    previous = find_source_parent(repo.snapshots(), label, source.type)
    if previous is None:
        expected, basis = found.bytes or 0, "first backup: everything is new"
    else:
        expected = previous.summary.bytes_new
        basis = f"as much as snapshot {previous.short_id} added"
    return SourceEstimateReport(found.bytes, found.items, expected, basis, dict(found.details))
