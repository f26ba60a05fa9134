"""The backup operation: scan, check space, store, commit the snapshot, journal it all."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vault.backup.files import Archiver, BackupOptions, special_kind
from vault.backup.files_cache import FilesCache
from vault.errors import SpecialFileSource, UsageError
from vault.foundation.failpoints import reached
from vault.foundation.progress import MultiReporter, ProgressCounter, ProgressReporter
from vault.journal import events as ev
from vault.operations.common import check_free_space, remove_temp_debris, repository_lock
from vault.operations.journal_check import anchor_snapshot
from vault.operations.quota import (
    check_quota,
    keeping_written_packs,
    quota_guard,
    record_storage_usage,
)
from vault.planning.filters import PathFilter
from vault.planning.quota import GrowthRatios, growth_ratios
from vault.repository.repository import Repository, vault_version
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import FileProblem, Snapshot, SnapshotSummary
from vault.runtime.app import Vault
from vault.runtime.jobrun import JobRun


@dataclass
class BackupRequest:
    paths: list[str]
    excludes: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    exclude_larger_than: int | None = None
    one_file_system: bool = False
    tags: list[str] = field(default_factory=list)
    force: bool = False
    dry_run: bool = False
    threads: int = 2
    label: str | None = None  # the configured files source these paths are, if any
    group_id: str | None = None
    group_time: datetime | None = None
    read_special: bool = False  # FIFOs and devices read as files (else refused as paths)

    def options(self) -> dict[str, object]:
        return {"excludes": self.excludes, "includes": self.includes,
                "exclude_larger_than": self.exclude_larger_than,
                "one_file_system": self.one_file_system, "force": self.force}


@dataclass
class BackupOutcome:
    job_id: str | None
    snapshot: Snapshot | None
    summary: SnapshotSummary
    problems: list[FileProblem]
    dry_run: bool = False
    #: StorageLow/StorageRecovered journaled after this backup, if usage crossed warn_at
    storage_event: ev.StorageLow | ev.StorageRecovered | None = None

    @property
    def partial(self) -> bool:
        return bool(self.problems)


def _archiver(vault: Vault, repo: Repository, req: BackupRequest,
              reporter: ProgressReporter) -> Archiver:
    cfg = vault.config.repository
    saver = BlobSaver(repo, compression_level=cfg.compression_level,
                      pack_size=cfg.pack_size_mib << 20, dry_run=req.dry_run)
    options = BackupOptions(
        path_filter=PathFilter(tuple(req.excludes), tuple(req.includes),
                               req.exclude_larger_than),
        one_file_system=req.one_file_system, force=req.force, threads=req.threads,
        read_special=req.read_special)
    cache = FilesCache(vault.cache_dir, repo.id)
    return Archiver(saver, cache, options, ProgressCounter(reporter, "backup"))


def _absolute_paths(paths: list[str], *, read_special: bool = False) -> list[str]:
    if not paths:
        raise UsageError("nothing to back up: give at least one path")
    absolute = [os.path.abspath(p) for p in paths]
    missing = [p for p in absolute if not os.path.lexists(p)]
    if len(missing) == len(absolute):
        raise UsageError(f"no such file or directory: {', '.join(missing)}")
    for path in absolute:
        _refuse_special(path, read_special)
    return absolute


def _refuse_special(path: str, read_special: bool) -> None:
    """A FIFO, socket or device given as a path would make an empty "completed" snapshot
    (or block): refused, unless --read-special asks to store what it yields."""
    try:
        kind = special_kind(os.stat(path).st_mode)
    except OSError:
        return  # missing or unreadable: reported as a problem by the walk
    if kind == "socket" or (kind is not None and not read_special):
        raise SpecialFileSource(path=path, kind=kind)


def saved_by_job(snapshots: list[Snapshot], job_id: str | None) -> Snapshot | None:
    """The snapshot an earlier attempt of this job saved, if any: a retry reports it
    instead of saving a duplicate (the attempt may have failed after saving it)."""
    if job_id is None:
        return None
    return next((s for s in snapshots if s.job_id == job_id), None)


def find_parent(snapshots: list[Snapshot], paths: list[str]) -> Snapshot | None:
    host = socket.gethostname()
    same = [s for s in snapshots if s.host == host and sorted(s.paths) == sorted(paths)]
    return same[-1] if same else None


def run_backup(vault: Vault, req: BackupRequest, reporter: ProgressReporter,
               job_id: str | None = None) -> BackupOutcome:
    paths = _absolute_paths(req.paths, read_special=req.read_special)
    repo = vault.repository()
    if req.dry_run:
        return _dry_run(vault, repo, req, reporter)
    run = JobRun.start(vault.journal, "backup", job_id, repository=repo.location,
                       paths=paths, tags=req.tags, options=req.options(),
                       source=req.label, group_id=req.group_id)
    with run, repository_lock(vault, repo, exclusive=False, operation="backup") as lock:
        repo.load_index()
        snapshots = repo.snapshots()  # read once: the retry check and the parent
        if (earlier := saved_by_job(snapshots, job_id)) is not None:
            run.complete(completed_event(run.job_id, repo, earlier))
            return BackupOutcome(run.job_id, earlier, earlier.summary, earlier.errors)
        repo.recover_unindexed_packs()
        remove_temp_debris(vault, repo)  # what killed backups were writing
        # Packs found gone are remembered: their blobs are stored again from the source.
        repo.save_found_damage("backup", run.job_id)
        parent = find_parent(snapshots, paths)
        run.record(ev.BackupStarted(job_id=run.job_id, repo_id=repo.id,
                                    parent=parent.id if parent else None))
        archiver = _archiver(vault, repo, req,
                             MultiReporter(reporter, run.progress()))
        # Files have no consistent point: they are read as they are from now until the
        # snapshot's time. This is the member's time in a group (docs/sources.md#groups).
        captured_at = datetime.now(UTC)
        archiver.scan(paths)
        check_free_space(vault, repo, archiver.bytes_to_read)
        # An estimate (docs/config.md#quotas): what the files cache cannot skip, scaled
        # by what recent snapshots added per byte read. Checked before any pack exists;
        # then the guard admits every pack, so the quota is never passed.
        if vault.config.repository.quota is not None:
            used = check_quota(vault, repo,
                               recent_growth(repo).stored_for(archiver.bytes_to_read))
            archiver.saver.budget = quota_guard(vault, repo, used)
        with keeping_written_packs(archiver.saver):
            result = archiver.store()
            archiver.saver.flush()
        snapshot = _snapshot(req, paths, result.tree.hex(), parent, result.summary,
                             result.problems, run.job_id)
        snapshot.captured_at = captured_at
        # A backup frozen past its lease may have lost its lock to a prune that then
        # deleted packs it relies on: never commit a snapshot in that case.
        lock.check()
        reached("backup", "flushed")  # everything stored and indexed, no snapshot yet
        repo.save_snapshot(snapshot)
        reached("backup", "snapshot-written")  # committed, not journaled yet
        if archiver.cache is not None:
            archiver.remember_in_cache()
            archiver.cache.commit()
        run.complete(completed_event(run.job_id, repo, snapshot))
        anchor_snapshot(vault, repo, snapshot.id)
    storage_event = record_storage_usage(vault, repo)
    return BackupOutcome(run.job_id, snapshot, snapshot.summary, snapshot.errors,
                         storage_event=storage_event)


def _dry_run(vault: Vault, repo: Repository, req: BackupRequest,
             reporter: ProgressReporter) -> BackupOutcome:
    archiver = _archiver(vault, repo, req, reporter)
    archiver.scan(_absolute_paths(req.paths, read_special=req.read_special))
    result = archiver.store()
    return BackupOutcome(None, None, result.summary, result.problems, dry_run=True)


def _snapshot(req: BackupRequest, paths: list[str], tree: str, parent: Snapshot | None,
              summary: SnapshotSummary, problems: list[FileProblem], job_id: str) -> Snapshot:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Snapshot(
        time=datetime.now(UTC), host=socket.gethostname(), user=user, uid=os.getuid(),
        paths=paths, tags=sorted(set(req.tags)), tree=tree,
        parent=parent.id if parent else None,
        backup_type="full" if parent is None or req.force else "incremental",
        status="partial" if problems else "completed",
        filters=req.options(), summary=summary, errors=problems,
        vault_version=vault_version(), job_id=job_id,
        source={"type": "files", **({"name": req.label, "label": req.label} if req.label else {})},
        group_id=req.group_id, group_time=req.group_time,
    )


def completed_event(job_id: str, repo: Repository, snap: Snapshot) -> ev.BackupCompleted:
    s = snap.summary
    return ev.BackupCompleted(
        job_id=job_id, repo_id=repo.id, snapshot_id=snap.id, status=snap.status,
        backup_type=snap.backup_type, parent=snap.parent, paths=snap.paths, tags=snap.tags,
        host=snap.host, snapshot_time=snap.time.isoformat(), files_new=s.files_new,
        files_changed=s.files_changed, files_unmodified=s.files_unmodified, dirs=s.dirs,
        bytes_raw=s.bytes_raw, bytes_new=s.bytes_new, bytes_stored=s.bytes_stored,
        duration_seconds=s.duration_seconds,
        errors=[ev.FileProblem(path=p.path, error=p.error) for p in snap.errors],
        source_type=str(snap.source.get("type", "files")), source=snap.source.get("label"),
        group_id=snap.group_id,
    )


@dataclass
class BackupEstimate:
    files: int
    bytes_total: int
    files_to_read: int
    bytes_to_read: int
    estimated_new_bytes: int
    estimated_stored_bytes: int
    estimated_seconds: float | None
    based_on_snapshots: int


def estimate_backup(vault: Vault, req: BackupRequest) -> BackupEstimate:
    """Size and duration before backing up, from the files cache and past throughput.

    Only unchanged files (per the files cache) are known not to cost anything; for the
    rest, the ratios of recent snapshots (new ÷ read, stored ÷ new, read bytes per second)
    turn bytes to read into bytes to store and seconds.
    """
    from vault.foundation.progress import NullReporter

    repo = vault.repository()
    repo.load_index()
    archiver = _archiver(vault, repo, req, NullReporter())
    archiver.scan(_absolute_paths(req.paths))
    ratios = recent_growth(repo)
    to_read = archiver.bytes_to_read
    rate = ratios.read_bytes_per_second
    return BackupEstimate(
        files=archiver.summary.files_new + archiver.summary.files_changed
        + archiver.summary.files_unmodified,
        bytes_total=archiver.summary.bytes_raw,
        files_to_read=archiver.summary.files_new + archiver.summary.files_changed,
        bytes_to_read=to_read,
        estimated_new_bytes=int(to_read * ratios.new_per_read),
        estimated_stored_bytes=ratios.stored_for(to_read),
        estimated_seconds=to_read / rate if rate else None,
        based_on_snapshots=ratios.snapshots,
    )


def recent_growth(repo: Repository) -> GrowthRatios:
    """The new/read and stored/new ratios of the last five snapshots."""
    return growth_ratios(s.summary for s in repo.snapshots()[-5:])
