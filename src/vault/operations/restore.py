"""The restore operation for file snapshots: select, check, write, report, journal."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vault.app import Vault
from vault.errors import SnapshotNotFound, UsageError
from vault.jobrun import JobRun
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.progress import MultiReporter, ProgressCounter, ProgressReporter
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.restore.files import FileRestorer, OverwritePolicy, RestoreStats
from vault.restore.selection import Selection


@dataclass
class RestoreRequest:
    snapshot_ref: str  # "latest", an id prefix, optionally ":subdir"
    target: str
    paths: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    overwrite: OverwritePolicy = "always"
    dry_run: bool = False
    threads: int = 4


@dataclass
class RestoreOutcome:
    job_id: str | None
    snapshot: Snapshot
    stats: RestoreStats
    duration_seconds: float


def split_ref(ref: str) -> tuple[str, str]:
    """"abc123:srv/app" -> ("abc123", "/srv/app"); "latest" -> ("latest", "/")."""
    snap, _, sub = ref.partition(":")
    return snap, "/" + sub.strip("/")


def resolve_subtree(repo: Repository, snapshot: Snapshot, path: str) -> bytes:
    """The tree id at `path` inside a snapshot."""
    tree = bytes.fromhex(snapshot.tree)
    for part in [p for p in path.split("/") if p]:
        match = [n for n in repo.load_tree(tree) if n.name == part]
        if not match or match[0].type != "dir" or match[0].subtree is None:
            raise SnapshotNotFound(ref=f"{snapshot.short_id}:{path}", repo=repo.location)
        tree = match[0].subtree
    return tree


def run_restore(vault: Vault, req: RestoreRequest, reporter: ProgressReporter,
                job_id: str | None = None) -> RestoreOutcome:
    import time

    if not req.target:
        raise UsageError("give a --target directory to restore into")
    ref, sub = split_ref(req.snapshot_ref)
    repo = vault.repository()
    snapshot = repo.find_snapshot(ref)
    target = os.path.abspath(req.target)
    if os.path.lexists(target) and not os.path.isdir(target):
        raise UsageError(f"restore target {target} exists and is not a directory")
    selection = Selection(
        paths=tuple(os.path.join(sub, p.lstrip("/")) if sub != "/" else "/" + p.lstrip("/")
                    for p in req.paths),
        includes=tuple(req.includes), excludes=tuple(req.excludes))
    started = time.monotonic()
    if req.dry_run:
        repo.load_index()
        restorer = FileRestorer(repo, target, selection, req.overwrite,
                                ProgressCounter(reporter, "restore"), dry_run=True)
        stats = restorer.run(resolve_subtree(repo, snapshot, sub), sub)
        return RestoreOutcome(None, snapshot, stats, time.monotonic() - started)
    run = JobRun.start(vault.journal, "restore", job_id, repository=repo.location,
                       snapshot_ref=req.snapshot_ref, target=target, paths=req.paths,
                       include=req.includes, exclude=req.excludes,
                       options={"overwrite": req.overwrite})
    with run, repository_lock(vault, repo, exclusive=False, operation="restore"):
        run.record(ev.RestoreStarted(job_id=run.job_id, snapshot_id=snapshot.id))
        repo.load_index()
        tree = resolve_subtree(repo, snapshot, sub)
        progress = MultiReporter(reporter, run.progress())
        restorer = FileRestorer(repo, target, selection, req.overwrite,
                                ProgressCounter(progress, "restore"), threads=req.threads)
        stats = restorer.run(tree, sub)
        duration = time.monotonic() - started
        run.complete(ev.RestoreCompleted(
            job_id=run.job_id, snapshot_id=snapshot.id, target=target,
            files_restored=stats.files_restored, files_skipped=stats.files_skipped,
            dirs=stats.dirs, bytes_written=stats.bytes_written, duration_seconds=duration,
            errors=[ev.FileProblem(path=p.path, error=p.error) for p in stats.problems]))
    return RestoreOutcome(run.job_id, snapshot, stats, duration)
