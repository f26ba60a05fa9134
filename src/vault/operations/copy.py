"""`vault copy`: snapshots of one repository copied into another (keys of its own).

Journaled as CopyRequested -> SnapshotCopied* -> CopyCompleted | CopyFailed. The source is
read under a shared lock; the destination is written under the lock a backup takes, in a
backup's order (packs -> index -> snapshot), so a copy killed anywhere leaves no snapshot
half-made: the next copy indexes the packs the killed one wrote, skips what was copied
(`Snapshot.original`, planning/copy_plan.py) and stores only the blobs still missing.
Source data that does not read back whole fails that snapshot's copy (reported, recorded
as damage in the source), never a copy with a hole in it. docs/offsite.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from vault.errors import ConfigError, IntegrityError, Interrupted, UsageError, VaultError
from vault.foundation.failpoints import reached
from vault.foundation.progress import ProgressCounter, ProgressReporter
from vault.journal import events as ev
from vault.journal.queries import events_of_type
from vault.operations.common import record_read_damage, remove_temp_debris, repository_lock
from vault.operations.copy_secrets import rewrite_for
from vault.operations.quota import keeping_written_packs, quota_guard, record_storage_usage
from vault.planning.copy_plan import (
    CopyItem,
    CopyPlan,
    after_newest_copy,
    copy_of,
    original_id,
    plan_copy,
    select,
)
from vault.repository.copier import TreeCopier
from vault.repository.lock import RepositoryLock
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import Snapshot, source_name
from vault.repository.snapshot_ref import SnapshotCriteria
from vault.repository.tree import TreeLimitExceeded
from vault.runtime.app import PassphraseOptions, Vault
from vault.runtime.jobrun import new_job_id

#: SnapshotCopied events read to find a copy not journaled: more than a journal holds
_EVENTS_READ = 1_000_000
#: variables that hold the passphrase of the repository `-r` names, never the destination's
_SOURCE_PASSPHRASE_VARIABLES = ("VAULT_PASSWORD", "VAULT_PASSWORD_FILE", "VAULT_PASSWORD_COMMAND")


@dataclass
class CopyRequest:
    to: str  # a [[repositories]] name, or the url of one
    snapshots: list[str] = field(default_factory=list)
    all: bool = False
    since: datetime | None = None
    source: str | None = None
    dry_run: bool = False
    tag: str | None = None  # only snapshots with this tag (a schedule's own)
    #: only from the newest snapshot already copied on (planning.copy_plan.after_newest_copy)
    after_newest_copy: bool = False


@dataclass
class CopyReport:
    job_id: str
    source: str
    destination: str
    destination_name: str | None
    dry_run: bool
    copied: list[tuple[str, str]] = field(default_factory=list)  # (source id, copy id)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source id, copy id)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source id, why)
    to_copy: list[str] = field(default_factory=list)  # dry run: what would be copied
    bytes_read: int = 0
    blobs_new: int = 0
    bytes_new: int = 0
    bytes_stored: int = 0
    duration_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return not self.failed


def configured_vault(vault: Vault, target: str,
                     flag: str = "--to") -> tuple[Vault, str | None]:
    """A Vault on another configured repository (`--to NAME`, or the url of an entry) and
    its name. It is opened with its own `password` reference (or a prompt), never with the
    passphrase given for the repository `-r` chose."""
    config = vault.config
    names = {entry.name for entry in config.repositories}
    by_url = {entry.url: entry.name for entry in config.repositories}
    name = target if target in names else by_url.get(target)
    if name is None:
        configured = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"{flag} {target!r}: no such repository in the configuration "
                          f"(configured [[repositories]]: {configured})")
    settings = config.repository_named(name)
    env = {k: v for k, v in vault.passphrase_options.env.items()
           if k not in _SOURCE_PASSPHRASE_VARIABLES}
    options = PassphraseOptions(prompt=vault.passphrase_options.prompt, env=env)
    return Vault(config.model_copy(update={"repository": settings}), options,
                 vault.actor, vault.storage_options), name


def run_copy(vault: Vault, req: CopyRequest, reporter: ProgressReporter) -> CopyReport:
    if not (req.snapshots or req.all or req.since):
        raise UsageError("name the snapshots to copy, or give --all or --since")
    source = vault.repository()
    target, name = configured_vault(vault, req.to)
    try:
        destination = target.repository()
        if destination.id == source.id:
            raise UsageError(f"{destination.location} is the repository being copied "
                             "(-r): copy into another one")
        report = CopyReport(new_job_id("copy"), source.location, destination.location,
                            name, req.dry_run)
        vault.journal.append(report.job_id, ev.CopyRequested(
            job_id=report.job_id, repository=source.location, destination=destination.location,
            destination_name=name, snapshots=req.snapshots, all=req.all,
            since=req.since.isoformat() if req.since else None, source=req.source,
            dry_run=req.dry_run))
        _journaled(vault, report, lambda: _run(vault, target, source, destination, req,
                                               report, reporter))
        return report
    finally:
        target.close()


def _journaled(vault: Vault, report: CopyReport, body: Callable[[], None]) -> None:
    """Run `body` (which journals CopyCompleted); journal CopyFailed when it raises."""
    try:
        body()
    except BaseException as exc:
        known = Interrupted() if isinstance(exc, KeyboardInterrupt) else exc
        kind = known.kind if isinstance(known, VaultError) else type(known).__name__
        message = known.message if isinstance(known, VaultError) else str(known)
        vault.journal.append(report.job_id, ev.CopyFailed(
            job_id=report.job_id, error_kind=kind, message=message))
        setattr(exc, "journaled", True)  # noqa: B010  # the CLI must not journal it again
        raise


def _run(vault: Vault, target: Vault, source: Repository, destination: Repository,
         req: CopyRequest, report: CopyReport, reporter: ProgressReporter) -> None:
    with ExitStack() as stack:
        stack.enter_context(repository_lock(vault, source, exclusive=False,
                                            operation="copy (source)"))
        lock = None if req.dry_run else stack.enter_context(
            repository_lock(target, destination, exclusive=False, operation="copy"))
        plan = _plan(vault, target, source, destination, req, report)
        if not req.dry_run:
            _journal_unrecorded(vault, report, source, destination, plan)
        saver = _saver(target, destination, req.dry_run)
        counter = ProgressCounter(reporter, "copy")
        counter.set_totals(sum(i.snapshot.summary.bytes_raw for i in plan.to_copy),
                           len(plan.to_copy))
        copier = TreeCopier(source, saver, on_read=_on_read(counter))
        with keeping_written_packs(saver):  # stopped by the quota: what was written is kept
            for item in plan.items:
                _copy_one(vault, source, destination, copier, item, lock, report)
        counter.finish()
        report.bytes_read = copier.bytes_read
        report.blobs_new, report.bytes_new = saver.stats.blobs_new, saver.stats.bytes_new
        report.bytes_stored = saver.stats.bytes_stored
    if not req.dry_run:
        record_storage_usage(target, destination)  # the figures `vault status` shows
    report.duration_seconds = time.monotonic() - report.started
    vault.journal.append(report.job_id, ev.CopyCompleted(
        job_id=report.job_id, from_repo_id=source.id, to_repo_id=destination.id,
        copied=len(report.copied), skipped=len(report.skipped),
        failed=[f"{sid[:8]}: {why}" for sid, why in report.failed],
        bytes_read=report.bytes_read, bytes_stored=report.bytes_stored,
        dry_run=req.dry_run, duration_seconds=report.duration_seconds))


def _plan(vault: Vault, target: Vault, source: Repository, destination: Repository,
          req: CopyRequest, report: CopyReport) -> CopyPlan:
    snapshots = source.snapshots()
    selected = select(snapshots, since=req.since, source=req.source, tag=req.tag) \
        if req.all or req.since else []
    criteria = SnapshotCriteria(source=req.source)
    selected += [source.find_snapshot(ref, criteria) for ref in req.snapshots]
    destination.load_index()
    if not req.dry_run:
        # What a killed copy (or backup) wrote is indexed again and reused.
        destination.recover_unindexed_packs()
        remove_temp_debris(target, destination)
        destination.save_found_damage("copy", report.job_id)
    copies = destination.snapshots()
    if req.after_newest_copy:
        selected = after_newest_copy(selected, copies)
    plan = plan_copy(selected, snapshots, copies)
    report.skipped = [(i.snapshot.id, i.copied_as or "") for i in plan.skipped]
    return plan


def _saver(target: Vault, destination: Repository, dry_run: bool) -> BlobSaver:
    """The destination's saver, with its own settings and its hard quota (every pack
    admitted first, as a backup's: docs/config.md#quotas)."""
    settings = target.config.repository
    return BlobSaver(destination, compression_level=settings.compression_level,
                     pack_size=settings.pack_size_mib << 20, dry_run=dry_run,
                     budget=None if dry_run else quota_guard(target, destination))


def _on_read(counter: ProgressCounter) -> Callable[[int, str], None]:
    def on_read(nbytes: int, path: str) -> None:
        counter.add(nbytes, current=path)
    return on_read


def _copy_one(vault: Vault, source: Repository, destination: Repository, copier: TreeCopier,
              item: CopyItem, lock: RepositoryLock | None, report: CopyReport) -> None:
    snapshot = item.snapshot
    if item.copied_as is not None:
        return
    copier.rewrite_for = rewrite_for(snapshot, source, destination)
    _learn(copier, destination, item)
    before = _stats(copier.saver)
    try:
        with _source_damage(source, report, snapshot, copier):
            tree = copier.copy_snapshot_tree(bytes.fromhex(snapshot.tree))
    except _Skipped:
        return
    copier.saver.flush()  # packs and index before the snapshot that names them
    reached("copy", "data-written")
    if report.dry_run:
        report.to_copy.append(snapshot.id)
        return
    if lock is not None:
        lock.check()  # a copy frozen past its lease may have lost its lock to a prune
    # the parent's copy: there before this copy started, or made by it just now
    parent = item.parent_copy or dict(report.copied).get(snapshot.parent or "")
    copy = copy_of(snapshot, tree.hex(), parent)
    destination.save_snapshot(copy)
    reached("copy", "snapshot-saved")
    report.copied.append((snapshot.id, copy.id))
    after = _stats(copier.saver)
    delta = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
    vault.journal.append(report.job_id, _copied_event(report, source, destination, snapshot,
                                                      copy.id, delta))


def _learn(copier: TreeCopier, destination: Repository, item: CopyItem) -> None:
    """Map blob ids through the earlier copy the plan found; a hint only: an earlier copy
    that does not read back is left alone (the data is then read from the source)."""
    if item.learn_from is None:
        return
    earlier, its_copy = item.learn_from
    try:
        copied_tree = bytes.fromhex(destination.load_snapshot(its_copy).tree)
    except VaultError:
        return
    copier.learn_from_copy(bytes.fromhex(earlier.tree), copied_tree, destination)


class _Skipped(Exception):
    """The snapshot could not be copied; already in the report."""


@contextmanager
def _source_damage(source: Repository, report: CopyReport, snapshot: Snapshot,
                   copier: TreeCopier) -> Iterator[None]:
    """Damaged source data fails this snapshot's copy (listed in the report, recorded as
    damage in the source as a restore would) and the copy goes on with the next one."""
    try:
        yield
    except (IntegrityError, TreeLimitExceeded) as exc:
        where = f"{copier.failed_path}: " if copier.failed_path else ""
        copier.failed_path = ""
        report.failed.append((snapshot.id, f"{where}{exc.message}"))
        warning = record_read_damage(source, "copy", report.job_id, snapshot.id, [])
        if warning:
            report.failed.append((snapshot.id, warning))
        raise _Skipped from exc


def _stats(saver: BlobSaver) -> tuple[int, int, int]:
    return saver.stats.blobs_new, saver.stats.bytes_new, saver.stats.bytes_stored


def _journal_unrecorded(vault: Vault, report: CopyReport, source: Repository,
                        destination: Repository, plan: CopyPlan) -> None:
    """A copy a killed `vault copy` saved but did not live to journal is journaled now
    (with nothing stored), so the journal (and `vault status`) knows what the destination
    holds."""
    if not plan.skipped:
        return
    recorded = {str(row["payload"].get("to_snapshot_id")) for row in events_of_type(
        vault.config.journal_path(), "SnapshotCopied", limit=_EVENTS_READ)}
    for item in plan.skipped:
        if item.copied_as is not None and item.copied_as not in recorded:
            vault.journal.append(report.job_id, _copied_event(
                report, source, destination, item.snapshot, item.copied_as, (0, 0, 0)))


def _copied_event(report: CopyReport, source: Repository, destination: Repository,
                  snapshot: Snapshot, copy_id: str,
                  stored: tuple[int, int, int]) -> ev.SnapshotCopied:
    return ev.SnapshotCopied(
        job_id=report.job_id, from_repo_id=source.id, from_repository=source.location,
        from_snapshot_id=snapshot.id, to_repo_id=destination.id,
        to_repository=destination.location, to_name=report.destination_name,
        to_snapshot_id=copy_id, original_id=original_id(snapshot),
        source=source_name(snapshot) or None, snapshot_time=snapshot.time.isoformat(),
        blobs_new=stored[0], bytes_new=stored[1], bytes_stored=stored[2])
