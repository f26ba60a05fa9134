"""`vault repair index|packs|snapshots`: make a damaged repository healthy, journaled.

Every repair holds the exclusive lock (nothing else runs), journals `RepairStarted`, then
`RepairCompleted` with what changed and what is lost for good, or `RepairFailed`. The
mechanics and their crash-safety argument are in repository/repair.py and
repository/snapshot_repair.py; the runbook is docs/repair.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from vault.errors import VaultError
from vault.foundation.failpoints import reached
from vault.foundation.progress import NullReporter, ProgressCounter
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.operations.verify import Verifier
from vault.repository.repair import (
    damaged_packs,
    repair_index,
    repair_packs,
    rewrite_damage_records,
    use_index,
)
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver
from vault.repository.snapshot import Snapshot
from vault.repository.snapshot_repair import (
    SnapshotRepairer,
    TreeRepair,
    already_repaired,
    needs_repair,
    repaired_copy,
)
from vault.runtime.app import Vault
from vault.runtime.jobrun import new_job_id
from vault.storage.stack import read_through

Target = Literal["index", "packs", "snapshots"]
Traced = dict[str, dict[str, list[str]]]  # snapshot id -> {"paths": [...], "blobs": [...]}
#: lost paths kept in the RepairCompleted event (the count covers them all)
MAX_LOST_IN_EVENT = 1000


@dataclass
class RepairRequest:
    target: Target
    dry_run: bool = False
    read_all_packs: bool = False  # index: read every pack's header, not only suspect ones
    packs: list[str] = field(default_factory=list)  # packs: more pack ids to treat as damaged
    forget: bool = False  # snapshots: forget the originals once their repair is saved


@dataclass
class RepairReport:
    target: Target
    dry_run: bool
    job_id: str
    changes: dict[str, int] = field(default_factory=dict)
    lost: list[tuple[str, str]] = field(default_factory=list)  # (snapshot id, path)
    notes: list[str] = field(default_factory=list)
    repaired: dict[str, str] = field(default_factory=dict)  # original id -> new id


def run_repair(vault: Vault, req: RepairRequest) -> RepairReport:
    repo = vault.repository()
    read_through(repo.storage)  # repair what the repository holds, not the local cache
    report = RepairReport(req.target, req.dry_run, new_job_id("repair"))
    journal, started = vault.journal, time.monotonic()
    journal.append(report.job_id, ev.RepairStarted(job_id=report.job_id, repo_id=repo.id,
                                                   target=req.target, dry_run=req.dry_run))
    try:
        with repository_lock(vault, repo, exclusive=True, operation=f"repair {req.target}"):
            repo.reload_index()
            reached(f"repair-{req.target}", "locked")
            _REPAIRS[req.target](vault, repo, req, report)
            reached(f"repair-{req.target}", "done")
    except VaultError as exc:
        journal.append(report.job_id, ev.RepairFailed(
            job_id=report.job_id, target=req.target, error_kind=exc.kind,
            message=exc.message))
        raise
    journal.append(report.job_id, ev.RepairCompleted(
        job_id=report.job_id, repo_id=repo.id, target=req.target, dry_run=req.dry_run,
        changes=report.changes, lost_count=len(report.lost),
        lost=[ev.LostData(snapshot_id=s, path=p) for s, p in report.lost[:MAX_LOST_IN_EVENT]],
        notes=report.notes[:1000], duration_seconds=time.monotonic() - started))
    return report


def _step(target: str) -> Callable[[str], None]:
    return lambda name: reached(f"repair-{target}", name)


def trace_missing(repo: Repository, snapshots: list[Snapshot],
                  bad: set[bytes] | None = None) -> Traced:
    """Snapshot -> the paths (and blobs) it holds that no index names (or in `bad`)."""
    tracer = Verifier(repo, ProgressCounter(NullReporter(), "repair"))
    tracer.report.bad_blobs = set(bad or ())
    tracer.trace_damage(snapshots)
    return {sid: {"paths": paths,
                  "blobs": sorted(b.hex() for b in tracer.report.corrupted_blobs[sid])}
            for sid, paths in tracer.report.corrupted.items()}


def _lost(traced: Traced) -> list[tuple[str, str]]:
    return [(sid, path) for sid, entry in sorted(traced.items()) for path in entry["paths"]]


def _repair_index(vault: Vault, repo: Repository, req: RepairRequest,
                  report: RepairReport) -> None:
    done = repair_index(repo, read_all=req.read_all_packs, dry_run=req.dry_run,
                        step=_step("index"))
    report.changes = {
        "packs_indexed": done.packs_indexed, "packs_read": len(done.packs_read),
        "packs_dropped": len(done.packs_dropped),
        "packs_unreadable": len(done.packs_unreadable),
        "index_files_damaged": len(done.index_files_damaged),
        "index_files_written": done.index_files_written,
        "index_files_removed": done.index_files_removed}
    report.notes += [f"index file {n[:12]}: unreadable ({why}), replaced"
                     for n, why in sorted(done.index_files_damaged.items())]
    report.notes += [f"pack {p[:12]}: {why}, left out of the index"
                     for p, why in sorted(done.packs_dropped.items())]
    report.notes += [
        f"pack {p[:12]}: header unreadable ({why}); " + (
            "its index entries are kept: run `vault repair packs`" if p in done.packs else
            "no index locates its blobs, so nothing can be read from it: left in place")
        for p, why in sorted(done.packs_unreadable.items())]
    if req.dry_run:
        use_index(repo, done.packs)  # as the repair would leave it
    else:
        repo.reload_index()
    report.lost = _lost(trace_missing(repo, repo.snapshots()))


def _repair_packs(vault: Vault, repo: Repository, req: RepairRequest,
                  report: RepairReport) -> None:
    targets = damaged_packs(repo, req.packs)
    if not targets:
        report.notes.append("no damaged pack is known: run `vault verify --read-data` first")
    done = repair_packs(repo, targets, dry_run=req.dry_run,
                        pack_size=vault.config.repository.pack_size_mib << 20,
                        step=_step("packs"))
    report.changes = {"packs_damaged": len(done.packs), "blobs_salvaged": done.blobs_salvaged,
                      "blobs_elsewhere": done.blobs_elsewhere, "blobs_lost": len(done.lost),
                      "packs_written": done.packs_written, "packs_deleted": done.packs_deleted,
                      "packs_kept_unreadable": len(done.unreadable)}
    report.notes += [f"pack {p[:12]}: neither its header nor any index locates its blobs; "
                     "kept as it is (nothing could be salvaged from it)"
                     for p in done.unreadable]
    snapshots = repo.snapshots()
    repo.reload_index()  # the damaged packs out of it (or, in a dry run, back in)
    if req.dry_run:
        report.lost = _lost(trace_missing(repo, snapshots, done.lost))
        return
    traced = trace_missing(repo, snapshots)
    rewrite_damage_records(repo, report.job_id, traced, step=_step("packs"))
    report.lost = _lost(traced)
    if report.lost:
        report.notes.append("snapshots still name lost data: back up the sources again, "
                            "or run `vault repair snapshots`")


def _repair_snapshots(vault: Vault, repo: Repository, req: RepairRequest,
                      report: RepairReport) -> None:
    snapshots = repo.snapshots()
    done_before = already_repaired(snapshots)
    saver = BlobSaver(repo, pack_size=vault.config.repository.pack_size_mib << 20,
                      dry_run=req.dry_run)
    repairer = SnapshotRepairer(repo, saver)
    plans: list[tuple[Snapshot, bytes, TreeRepair]] = []
    for snap in snapshots:
        if snap.id in done_before or not needs_repair(repo, snap):
            continue
        found = TreeRepair()
        whole_files = snap.source.get("type", "files") != "files"
        tree = repairer.repair_tree(bytes.fromhex(snap.tree), "", whole_files, found)
        plans.append((snap, tree, found))
        report.lost += [(snap.id, p) for p in found.dropped + found.dirs_lost]
        report.lost += [(snap.id, f"{t['path']} (truncated {t['size']} -> {t['kept']} "
                                  "bytes)") for t in found.truncated]
    report.changes = {"snapshots_damaged": len(plans), "snapshots_repaired": 0,
                      "snapshots_forgotten": 0}
    if req.dry_run:
        return
    saver.flush()
    step = _step("snapshots")
    step("trees-saved")
    for snap, tree, found in plans:
        copy = repaired_copy(snap, tree, found)
        report.repaired[snap.id] = repo.save_snapshot(copy)
        vault.journal.append(report.job_id, ev.SnapshotRepaired(
            job_id=report.job_id, repo_id=repo.id, original_id=snap.id,
            snapshot_id=copy.id, truncated=[t["path"] for t in found.truncated],
            dropped=found.dropped, dirs_lost=found.dirs_lost))
        report.changes["snapshots_repaired"] += 1
        step("snapshot-saved")
    if req.forget:
        _forget_originals(vault, repo, [*done_before, *report.repaired], report)


def _forget_originals(vault: Vault, repo: Repository, originals: list[str],
                      report: RepairReport) -> None:
    present = {s.id for s in repo.snapshots()}
    for n, original in enumerate(o for o in originals if o in present):
        if n == 1:
            reached("repair-snapshots", "forgetting")
        repo.remove_snapshot(original)
        vault.journal.append(report.job_id, ev.SnapshotForgotten(
            job_id=report.job_id, repo_id=repo.id, snapshot_id=original,
            reason="damaged; replaced by its repaired copy (vault repair snapshots)"))
        report.changes["snapshots_forgotten"] += 1


_REPAIRS: dict[str, Callable[[Vault, Repository, RepairRequest, RepairReport], None]] = {
    "index": _repair_index, "packs": _repair_packs, "snapshots": _repair_snapshots}
