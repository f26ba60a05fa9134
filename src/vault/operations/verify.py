"""Verifying a repository: structure (fast) and data (every byte decrypted and hashed).

Structure: every index file opens; every indexed pack exists with the indexed size; every
snapshot's trees load and every blob they name is indexed.
Data (`--read-data`, or a subset): every selected pack's SHA-256 matches its name, its
header opens, and every blob decrypts, decompresses and hashes to its id.
Anything bad is traced back to the snapshots and file paths it affects; those snapshots
are journaled as corrupted.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from vault.app import Vault
from vault.errors import IntegrityError, UsageError, VaultError
from vault.jobrun import JobRun
from vault.journal import events as ev
from vault.operations.common import repository_lock
from vault.progress import MultiReporter, ProgressCounter, ProgressReporter
from vault.repository.pack import PackFormatError, read_pack_entries
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.units import parse_bytes


@dataclass
class VerifyReport:
    snapshots_checked: int = 0
    packs_checked: int = 0
    blobs_checked: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)
    unreferenced_packs: list[str] = field(default_factory=list)
    corrupted: dict[str, list[str]] = field(default_factory=dict)  # snapshot id -> paths
    bad_blobs: set[bytes] = field(default_factory=set)
    bad_packs: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems


def select_packs(packs: list[str], sizes: dict[str, int], subset: str | None) -> list[str]:
    """Packs to read: all, `N%` (random), `n/t` (group n of t, stable), or a byte budget."""
    if subset is None:
        return sorted(packs)
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)%", subset):
        share = float(m.group(1)) / 100
        if not 0 < share <= 1:
            raise UsageError(f"--read-data-subset {subset}: percentage must be in (0, 100]")
        count = max(1, round(len(packs) * share)) if packs else 0
        return sorted(random.sample(packs, count))
    if m := re.fullmatch(r"(\d+)/(\d+)", subset):
        n, t = int(m.group(1)), int(m.group(2))
        if not 1 <= n <= t:
            raise UsageError(f"--read-data-subset {subset}: need 1 <= n <= t")
        return sorted(p for p in packs if int(p[:8], 16) % t == n - 1)
    try:
        budget = parse_bytes(subset)
    except ValueError as exc:
        raise UsageError(f"--read-data-subset {subset}: expected N%, n/t or a size") from exc
    chosen: list[str] = []
    total = 0
    for p in random.sample(packs, len(packs)):
        if total + sizes.get(p, 0) > budget and chosen:
            break
        chosen.append(p)
        total += sizes.get(p, 0)
    return sorted(chosen)


class Verifier:
    def __init__(self, repo: Repository, progress: ProgressCounter) -> None:
        self.repo = repo
        self.progress = progress
        self.report = VerifyReport()
        self._seen_trees: set[bytes] = set()

    def check_structure(self, snapshots: list[Snapshot]) -> None:
        index = self.repo.index
        stored = {info.name: info.size for info in self.repo.storage.list("data")}
        for pack_id, size in index.pack_sizes.items():
            if pack_id not in stored:
                self._bad_pack(pack_id, f"pack {pack_id[:12]} is missing")
            elif stored[pack_id] != size:
                self._bad_pack(pack_id, f"pack {pack_id[:12]} has size {stored[pack_id]}, "
                                        f"index says {size}")
        self.report.unreferenced_packs = sorted(p for p in stored if not index.has_pack(p))
        for snap in snapshots:
            self.report.snapshots_checked += 1
            self._check_tree(bytes.fromhex(snap.tree), snap)

    def _check_tree(self, tree_id: bytes, snap: Snapshot) -> None:
        if tree_id in self._seen_trees:
            return
        self._seen_trees.add(tree_id)
        try:
            nodes = self.repo.load_tree(tree_id)
        except VaultError as exc:
            self.report.bad_blobs.add(tree_id)
            self.report.problems.append(f"snapshot {snap.short_id}: {exc.message}")
            return
        for node in nodes:
            for blob_id in node.content:
                if blob_id not in self.repo.index:
                    self.report.bad_blobs.add(blob_id)
                    self.report.problems.append(
                        f"blob {blob_id.hex()[:12]} of {node.name!r} is not indexed")
            if node.subtree:
                self._check_tree(node.subtree, snap)

    def read_packs(self, packs: list[str]) -> None:
        sizes = self.repo.index.pack_sizes
        self.progress.set_totals(sum(sizes.get(p, 0) for p in packs), len(packs))
        for pack_id in packs:
            if pack_id in self.report.bad_packs:
                continue
            self._read_pack(pack_id)
            self.progress.add(sizes.get(pack_id, 0), 1)
        self.progress.finish()

    def _read_pack(self, pack_id: str) -> None:
        self.report.packs_checked += 1
        try:
            data = self.repo.storage.load("data", pack_id)
        except VaultError as exc:
            self._bad_pack(pack_id, exc.message)
            return
        self.report.bytes_read += len(data)
        if hashlib.sha256(data).hexdigest() != pack_id:
            self.report.problems.append(f"pack {pack_id[:12]}: content does not match its id")
        try:
            entries = read_pack_entries(self.repo.cipher, pack_id, data)
        except PackFormatError as exc:
            self._bad_pack(pack_id, str(exc))
            return
        view = memoryview(data)
        for entry in entries:
            self.report.blobs_checked += 1
            try:
                self.repo.open_blob(entry, view[entry.offset : entry.offset + entry.length])
            except IntegrityError as exc:
                self.report.bad_blobs.add(entry.blob_id)
                self.report.problems.append(exc.message)

    def _bad_pack(self, pack_id: str, problem: str) -> None:
        self.report.bad_packs.add(pack_id)
        self.report.problems.append(problem)

    def trace_damage(self, snapshots: list[Snapshot]) -> None:
        """Which snapshots and paths the bad blobs and packs affect."""
        for snap in snapshots:
            paths = list(self._damaged_paths(bytes.fromhex(snap.tree), ""))
            if paths:
                self.report.corrupted[snap.id] = paths

    def _is_bad(self, blob_id: bytes) -> bool:
        if blob_id in self.report.bad_blobs:
            return True
        entry = self.repo.index.get(blob_id)
        return entry is None or entry.pack_id in self.report.bad_packs

    def _damaged_paths(self, tree_id: bytes, prefix: str) -> Iterator[str]:
        if self._is_bad(tree_id):
            yield prefix or "/"
            return
        try:
            nodes = self.repo.load_tree(tree_id)
        except VaultError:
            yield prefix or "/"
            return
        for node in nodes:
            path = f"{prefix}/{node.name}"
            if any(self._is_bad(b) for b in node.content):
                yield path
            if node.subtree:
                yield from self._damaged_paths(node.subtree, path)


def run_verify(vault: Vault, read_data: bool, subset: str | None,
               reporter: ProgressReporter, job_id: str | None = None) -> VerifyReport:
    repo = vault.repository()
    run = JobRun.start(vault.journal, "verify", job_id, repository=repo.location,
                       read_data=read_data or subset is not None, subset=subset)
    started = time.monotonic()
    with run, repository_lock(vault, repo, exclusive=False, operation="verify"):
        run.record(ev.VerifyStarted(job_id=run.job_id, repo_id=repo.id))
        repo.load_index()
        verifier = Verifier(repo, ProgressCounter(MultiReporter(reporter, run.progress()),
                                                  "verify"))
        snapshots, damaged = repo.load_snapshots()
        for error in repo.index_errors:
            verifier.report.problems.append(error.message)
        for snapshot_id, error in damaged.items():
            verifier.report.problems.append(error.message)
            verifier.report.corrupted[snapshot_id] = ["/ (the snapshot object itself)"]
        verifier.check_structure(snapshots)
        if read_data or subset is not None:
            packs = select_packs(repo.index.packs(), repo.index.pack_sizes, subset)
            verifier.read_packs(packs)
        report = verifier.report
        if not report.ok:
            verifier.trace_damage(snapshots)
        for snapshot_id, paths in report.corrupted.items():
            run.record(ev.SnapshotCorrupted(job_id=run.job_id, repo_id=repo.id,
                                            snapshot_id=snapshot_id,
                                            reason="; ".join(report.problems[:3]),
                                            paths=paths[:1000]))
        run.complete(ev.VerifyCompleted(
            job_id=run.job_id, repo_id=repo.id, ok=report.ok,
            snapshots_checked=report.snapshots_checked, packs_checked=report.packs_checked,
            blobs_checked=report.blobs_checked, bytes_read=report.bytes_read,
            problems=report.problems[:1000],
            unreferenced_packs=len(report.unreferenced_packs),
            duration_seconds=time.monotonic() - started))
    return report
