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

from vault.errors import IntegrityError, ObjectNotFound, UsageError, VaultError
from vault.foundation.progress import MultiReporter, ProgressCounter, ProgressReporter
from vault.foundation.units import parse_bytes
from vault.journal import events as ev
from vault.operations.journal_check import check_journal_agreement
from vault.operations.readonly_lock import read_only_lock
from vault.repository.blob import BlobEntry
from vault.repository.condemned import condemned_packs, load_records
from vault.repository.pack import PackFormatError, read_pack_entries
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import TreeLimitExceeded
from vault.repository.tree_limits import check_tree_limits
from vault.runtime.app import Vault
from vault.runtime.jobrun import JobRun
from vault.storage.stack import read_through


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
    bad_headers: dict[str, str] = field(default_factory=dict)  # pack id -> what is wrong
    #: snapshot id -> the blobs behind its damaged paths (for the damage record)
    corrupted_blobs: dict[str, set[bytes]] = field(default_factory=dict)

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
        self._indexed_entries: dict[str, list[BlobEntry]] | None = None

    def indexed_entries(self, pack_id: str) -> list[BlobEntry]:
        """The index's entries in `pack_id` (grouped once, on the first damaged header)."""
        if self._indexed_entries is None:
            self._indexed_entries = {}
            for entry in self.repo.index.entries():
                self._indexed_entries.setdefault(entry.pack_id, []).append(entry)
        return self._indexed_entries.get(pack_id, [])

    def check_structure(self, snapshots: list[Snapshot]) -> None:
        index = self.repo.index
        stored = {info.name: info.size for info in self.repo.storage.list("data")}
        # A pack prune condemned may go while we look (it leaves the index first): gone
        # is then garbage collected, not damage.
        condemned = condemned_packs(load_records(self.repo))
        for pack_id, size in index.pack_sizes.items():
            if pack_id not in stored and pack_id in condemned:
                continue
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
        index = self.repo.index
        for node in nodes:
            stored, whole = 0, True
            for blob_id in node.content:
                entry = index.get(blob_id)
                if entry is None:
                    whole = False
                    self.report.bad_blobs.add(blob_id)
                    self.report.problems.append(
                        f"blob {blob_id.hex()[:12]} of {node.name!r} is {self._absence(blob_id)}")
                else:
                    stored += entry.raw_length
            if node.type == "file" and whole and stored != node.size:
                self.report.problems.append(
                    f"snapshot {snap.short_id}: {node.name!r} records {node.size} bytes but "
                    f"its content holds {stored}")
            if node.subtree:
                self._check_tree(node.subtree, snap)

    def _absence(self, blob_id: bytes) -> str:
        reason = self.repo.damage.reason(blob_id)
        return f"damaged ({reason})" if reason else "not indexed"

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
        except ObjectNotFound as exc:
            self._bad_pack(pack_id, exc.message)
            return
        except VaultError as exc:  # unreachable storage, expired credentials: not damage
            self.report.problems.append(f"pack {pack_id[:12]} could not be read ({exc.message});"
                                        " not recorded as damage: run verify again")
            return
        self.report.bytes_read += len(data)
        if hashlib.sha256(data).hexdigest() != pack_id:
            self.report.problems.append(f"pack {pack_id[:12]}: content does not match its id")
        try:
            entries = read_pack_entries(self.repo.cipher, pack_id, data)
        except PackFormatError as exc:
            # The header is one part of the pack: its blobs may all be fine. Read them
            # where the index puts them, so only the blobs that fail are called damaged.
            self.report.problems.append(f"pack {pack_id[:12]}: header damaged ({exc}); "
                                        "its blobs are read where the index puts them")
            self.report.bad_headers[pack_id] = str(exc)
            entries = self.indexed_entries(pack_id)
        view = memoryview(data)
        damage = self.repo.damage
        for entry in entries:
            self.report.blobs_checked += 1
            try:
                self.repo.open_blob(entry, view[entry.offset : entry.offset + entry.length])
            except IntegrityError as exc:
                if damage.is_bad_copy(entry.blob_id, pack_id):
                    self.report.problems.append(
                        f"{exc.message} (known since {damage.since}; no longer used: run "
                        "`vault repair packs` to drop it)")
                    continue
                self.report.bad_blobs.add(entry.blob_id)
                self.report.problems.append(exc.message)
                self.repo.note_damaged_copy(entry.blob_id, pack_id, str(exc.fields["detail"]))

    def _bad_pack(self, pack_id: str, problem: str) -> None:
        self.report.bad_packs.add(pack_id)
        self.report.problems.append(problem)
        self.repo.note_damaged_pack(pack_id, problem)

    def trace_damage(self, snapshots: list[Snapshot]) -> None:
        """Which snapshots and paths the bad blobs and packs affect, and through which
        blobs (kept in the damage record, so a snapshot's status can follow repairs)."""
        for snap in snapshots:
            blobs: set[bytes] = set()
            try:  # the trace walks every path: a hostile tree is named, not walked
                check_tree_limits(self.repo, bytes.fromhex(snap.tree))
            except TreeLimitExceeded as exc:
                self.report.problems.append(f"snapshot {snap.short_id}: {exc.message}")
                continue
            paths = list(self._damaged_paths(bytes.fromhex(snap.tree), "", blobs))
            if paths:
                self.report.corrupted[snap.id] = paths
                self.report.corrupted_blobs[snap.id] = blobs

    def _bad_blobs(self, blob_ids: list[bytes]) -> list[bytes]:
        return [b for b in blob_ids if self._is_bad(b)]

    def _is_bad(self, blob_id: bytes) -> bool:
        if blob_id in self.report.bad_blobs:
            return True
        entry = self.repo.index.get(blob_id)
        return entry is None or entry.pack_id in self.report.bad_packs

    def _damaged_paths(self, tree_id: bytes, prefix: str, blobs: set[bytes]) -> Iterator[str]:
        if self._is_bad(tree_id):
            blobs.add(tree_id)
            yield prefix or "/"
            return
        try:
            nodes = self.repo.load_tree(tree_id)
        except VaultError:
            blobs.add(tree_id)
            yield prefix or "/"
            return
        for node in nodes:
            path = f"{prefix}/{node.name}"
            bad = self._bad_blobs(node.content)
            if bad:
                blobs.update(bad)
                yield path
            if node.subtree:
                yield from self._damaged_paths(node.subtree, path, blobs)


def remember_damage(repo: Repository, report: VerifyReport, job_id: str) -> None:
    """Save a damage record for what this verify found and no record knew yet, so no
    backup reuses a bad copy and the snapshots it affects show as corrupted."""
    known = repo.damage
    snapshots = {}
    for snapshot_id, blobs in report.corrupted_blobs.items():
        if not blobs <= known.affected_blobs(snapshot_id):
            snapshots[snapshot_id] = {"paths": report.corrupted[snapshot_id],
                                      "blobs": sorted(b.hex() for b in blobs)}
    with repo.damage_lock:
        repo.found_damage.headers.update(report.bad_headers)
    try:
        repo.save_found_damage("verify", job_id, snapshots)
    except VaultError as exc:  # a read-only repository: the report still says it all
        report.problems.append(f"the damage found could not be recorded: {exc.message}")


def run_verify(vault: Vault, read_data: bool, subset: str | None,
               reporter: ProgressReporter, job_id: str | None = None) -> VerifyReport:
    repo = vault.repository()
    read_through(repo.storage)  # judge the repository's objects, not the local cache
    run = JobRun.start(vault.journal, "verify", job_id, repository=repo.location,
                       read_data=read_data or subset is not None, subset=subset)
    started = time.monotonic()
    with run, read_only_lock(vault, repo, operation="verify"):
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
        if report.unreferenced_packs and any("not indexed" in p for p in report.problems):
            report.problems.append(f"{len(report.unreferenced_packs)} pack(s) are in storage "
                                   "but in no index: run `vault repair index`")
        if not report.ok:
            verifier.trace_damage(snapshots)
            remember_damage(repo, report, run.job_id)
        # The journal against its anchors and the snapshots (docs/journal.md#anchors).
        report.problems += check_journal_agreement(vault, repo).problems
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
