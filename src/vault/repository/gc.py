"""Garbage collection: which packs to keep, repack or drop (pure), and doing it safely.

Planning is pure: `pack_usage` and `plan_prune` take the index and the set of blobs the
snapshots use and return data. `Collector` executes a plan in the crash-safe order

    new packs -> new index files -> condemned record -> old index files removed
    -> record finalized with the locks alive at that moment -> (later) packs deleted

and deletes a condemned pack only once every lock in its record is gone, after scanning
every snapshot again and re-indexing any condemned pack a snapshot still needs. The
argument for why this is safe next to running backups is in docs/prune.md.
"""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vault.errors import ObjectNotFound, PacksMissing, UsageError
from vault.foundation.progress import ProgressCounter
from vault.repository.blob import BlobEntry, BlobType
from vault.repository.condemned import (
    CondemnedRecord,
    condemned_packs,
    load_records,
    remove_record,
    replace_record,
    rescue_packs,
    save_record,
)
from vault.repository.gc_scan import (
    BlobLookup,
    UsageScanner,
    load_all_snapshots,
    load_fresh_index,
)
from vault.repository.index import MasterIndex
from vault.repository.pack import PackBuilder
from vault.repository.repository import Repository

#: what a pack's header and trailer cost besides its blobs: sealing, magic, count, trailer
_PACK_OVERHEAD = 28 + 8 + 4
_HEADER_ENTRY = 42
#: packs named by one index file that prune writes
_INDEX_PACKS_PER_FILE = 1000
#: which locks are alive now (ids), for a record and for the deletion check
LiveLocks = Callable[[], set[str]]
Progress = Callable[[str], ProgressCounter]


# --- planning (pure) --------------------------------------------------------------------


def parse_max_unused(text: str) -> float:
    """`5%` (or `5`) -> 0.05: the unused share above which a pack is repacked."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", text)
    if m is None or float(m.group(1)) > 100:
        raise UsageError(f"--max-unused {text}: expected a percentage from 0% to 100%")
    return float(m.group(1)) / 100


@dataclass(frozen=True)
class PackUsage:
    pack_id: str
    size: int
    used_blobs: int
    unused_blobs: int
    used_bytes: int  # sealed bytes of used blobs plus their share of a header

    @property
    def unused_bytes(self) -> int:
        return max(self.size - self.used_bytes, 0)

    @property
    def unused_share(self) -> float:
        return self.unused_bytes / self.size if self.size else 1.0


def pack_usage(index: MasterIndex, used: set[bytes]) -> dict[str, PackUsage]:
    """Usage of every indexed pack. A duplicate copy of a blob (not the one the index
    resolves to) counts as unused: its pack's bytes for it are waste."""
    used_count: dict[str, int] = defaultdict(int)
    unused_count: dict[str, int] = defaultdict(int)
    used_bytes: dict[str, int] = defaultdict(int)
    for entry in index.entries():
        if entry.blob_id in used:
            used_count[entry.pack_id] += 1
            used_bytes[entry.pack_id] += entry.length + _HEADER_ENTRY
        else:
            unused_count[entry.pack_id] += 1
    return {
        pack: PackUsage(pack, size, used_count[pack], unused_count[pack],
                        used_bytes[pack] + (_PACK_OVERHEAD if used_count[pack] else 0))
        for pack, size in index.pack_sizes.items()
    }


@dataclass
class PrunePlan:
    max_unused: float
    keep: list[str] = field(default_factory=list)
    repack: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # no used blob at all
    usage: dict[str, PackUsage] = field(default_factory=dict)

    @property
    def condemned(self) -> list[str]:
        return self.delete + self.repack

    @property
    def blobs_removed(self) -> int:
        return sum(self.usage[p].unused_blobs for p in self.condemned)

    @property
    def bytes_to_copy(self) -> int:
        return sum(self.usage[p].used_bytes for p in self.repack)

    @property
    def bytes_condemned(self) -> int:
        return sum(self.usage[p].size for p in self.condemned)

    @property
    def estimated_bytes_freed(self) -> int:
        return self.bytes_condemned - self.bytes_to_copy


def plan_prune(usage: Iterable[PackUsage], max_unused: float) -> PrunePlan:
    """Drop packs nobody uses; repack those whose unused share exceeds `max_unused`."""
    plan = PrunePlan(max_unused)
    for pack in sorted(usage, key=lambda u: u.pack_id):
        plan.usage[pack.pack_id] = pack
        if pack.used_blobs == 0:
            plan.delete.append(pack.pack_id)
        elif pack.unused_share > max_unused:
            plan.repack.append(pack.pack_id)
        else:
            plan.keep.append(pack.pack_id)
    return plan


# --- executing ----------------------------------------------------------------------------


def refuse_missing_packs(repo: Repository, job_id: str | None) -> None:
    """Refuse to collect over an index that names packs storage no longer holds (as
    restic's prune does): the plan would count them as kept, and their loss would go
    unnoticed. They are recorded as damage first (unless `job_id` is None: a dry run
    writes nothing), so the next backup stores their data again; `vault repair index`
    takes them out of the index. Call after `repo.unindexed_packs()` listed storage."""
    missing = repo.missing_packs
    if not missing:
        return
    if job_id is not None:
        repo.save_found_damage("prune", job_id)
    shown = ", ".join(p[:12] for p in missing[:3]) + (", ..." if len(missing) > 3 else "")
    raise PacksMissing(count=len(missing), repo=repo.location, packs=shown)


@dataclass
class CollectStats:
    packs_written: int = 0
    bytes_written: int = 0
    packs_deleted: int = 0
    bytes_deleted: int = 0
    packs_rescued: int = 0
    packs_recovered: int = 0
    records_settled: int = 0


class Collector:
    """Carries out prune's steps on an opened, locked repository."""

    def __init__(self, repo: Repository, *, job_id: str, pack_size: int,
                 live_locks: LiveLocks, check_lock: Callable[[], None],
                 progress: Progress) -> None:
        self.repo = repo
        self.job_id = job_id
        self.pack_size = pack_size
        self.live_locks = live_locks
        self.check_lock = check_lock
        self.progress = progress
        self.scanner = UsageScanner(repo)
        self.stats = CollectStats()

    def run(self, max_unused: float) -> PrunePlan:
        """Every step, in order; the plan says what this run condemned."""
        self.finish_switches()
        self.stats.packs_recovered = self.repo.recover_unindexed_packs()
        refuse_missing_packs(self.repo, self.job_id)
        used = self.scan()
        plan = plan_prune(pack_usage(self.repo.index, used).values(), max_unused)
        self.switch_index(plan, self.repack(plan))
        self.settle()
        return plan

    def finish_switches(self) -> None:
        """Complete index switches a killed prune left half done."""
        for record in load_records(self.repo):
            if not record.switched:
                self._finish_switch(record)

    def scan(self, *, rescue: bool = True) -> set[bytes]:
        """Walk every snapshot; re-index condemned packs a snapshot still needs."""
        snapshots = load_all_snapshots(self.repo)  # before the index: theirs is stored
        self.repo.refresh_index()
        lookup = BlobLookup(self.repo, self.repo.index, condemned_packs(load_records(self.repo)))
        self.scanner.scan(snapshots, lookup, self.progress("scan"))
        needed = self.scanner.needs_rescue(lookup)
        if needed and rescue:
            self.stats.packs_rescued += len(rescue_packs(self.repo, needed))
        return self.scanner.used

    def repack(self, plan: PrunePlan) -> dict[str, tuple[int, list[BlobEntry]]]:
        """Copy the used blobs of `plan.repack` into new packs; returns them (unindexed)."""
        used = self.scanner.used
        by_pack: dict[str, list[BlobEntry]] = defaultdict(list)
        wanted = set(plan.repack)
        for entry in self.repo.index.entries():
            if entry.pack_id in wanted and entry.blob_id in used:
                by_pack[entry.pack_id].append(entry)
        progress = self.progress("repack")
        progress.set_totals(sum(plan.usage[p].size for p in plan.repack), len(plan.repack))
        written: dict[str, tuple[int, list[BlobEntry]]] = {}
        builder = PackBuilder(self.repo.cipher)
        for pack_id in plan.repack:
            data = self.repo.storage.load("data", pack_id)
            for entry in sorted(by_pack[pack_id], key=lambda e: e.offset):
                sealed = data[entry.offset : entry.offset + entry.length]
                self.repo.open_blob(entry, sealed)  # never copy a damaged blob onwards
                builder.add(entry.blob_id, BlobType(entry.blob_type), sealed,
                            entry.raw_length, entry.flags)
                if builder.size >= self.pack_size:
                    self._write_pack(builder, written)
            progress.add(len(data), 1, current=pack_id[:12])
        self._write_pack(builder, written)
        progress.finish()
        return written

    def _write_pack(self, builder: PackBuilder,
                    written: dict[str, tuple[int, list[BlobEntry]]]) -> None:
        if not len(builder):
            return
        pack_id, data, entries = builder.finish()
        self.repo.storage.save("data", pack_id, data)
        written[pack_id] = (len(data), entries)
        self.stats.packs_written += 1
        self.stats.bytes_written += len(data)

    def switch_index(self, plan: PrunePlan,
                     new_packs: dict[str, tuple[int, list[BlobEntry]]]) -> None:
        """New index files for everything kept, a record for the rest, old files removed."""
        if not plan.condemned:
            return
        index = self.repo.index
        old_index = sorted(index.index_files)
        condemned = set(plan.condemned)
        kept: dict[str, tuple[int, list[BlobEntry]]] = {
            p: (s, []) for p, s in index.pack_sizes.items() if p not in condemned}
        for entry in index.entries():
            if entry.pack_id in kept:
                kept[entry.pack_id][1].append(entry)
        kept.update(new_packs)
        items = sorted(kept.items())
        for start in range(0, len(items), _INDEX_PACKS_PER_FILE):
            self.repo.write_index(dict(items[start : start + _INDEX_PACKS_PER_FILE]))
        record = CondemnedRecord(
            created=datetime.now(UTC).isoformat(), job_id=self.job_id,
            packs={p: index.pack_sizes[p] for p in sorted(condemned)},
            old_index=old_index, locks=None)
        save_record(self.repo, record)
        self._finish_switch(record)

    def _finish_switch(self, record: CondemnedRecord) -> None:
        self.check_lock()  # removing index files is the first step that takes anything away
        for name in record.old_index:
            with contextlib.suppress(ObjectNotFound):
                self.repo.storage.remove("index", name)
        done = CondemnedRecord(record.created, record.job_id, record.packs,
                               record.old_index, sorted(self.live_locks()))
        replace_record(self.repo, record, done)

    def settle(self) -> None:
        """Delete condemned packs nothing can need any more; rescue the ones still needed.

        Order matters: the locks are judged first, then the snapshots are listed, then the
        index is read — so every snapshot a released lock's holder committed is seen, with
        the index files written for it.
        """
        records = [r for r in load_records(self.repo) if r.switched]
        live = self.live_locks()
        eligible = [r for r in records if not set(r.locks or ()) & live]
        snapshots = load_all_snapshots(self.repo)
        index = load_fresh_index(self.repo)
        lookup = BlobLookup(self.repo, index, condemned_packs(records))
        self.scanner.scan(snapshots, lookup, self.progress("scan"))
        rescued = set(rescue_packs(self.repo, self.scanner.needs_rescue(lookup)))
        self.stats.packs_rescued += len(rescued)
        if eligible:
            self._delete(eligible, records, index, rescued)

    def _delete(self, eligible: list[CondemnedRecord], records: list[CondemnedRecord],
                index: MasterIndex, rescued: set[str]) -> None:
        waiting = condemned_packs(r for r in records if r not in eligible)
        progress = self.progress("delete")
        progress.set_totals(sum(sum(r.packs.values()) for r in eligible),
                            sum(len(r.packs) for r in eligible))
        self.check_lock()
        for record in eligible:
            for pack_id, size in sorted(record.packs.items()):
                if not (index.has_pack(pack_id) or pack_id in rescued or pack_id in waiting):
                    self._remove_pack(pack_id, size)
                progress.add(size, 1, current=pack_id[:12])
            remove_record(self.repo, record)
            self.stats.records_settled += 1
        progress.finish()

    def _remove_pack(self, pack_id: str, size: int) -> None:
        try:
            self.repo.storage.remove("data", pack_id)
        except ObjectNotFound:
            return  # a killed run removed it already
        self.stats.packs_deleted += 1
        self.stats.bytes_deleted += size

    def pending(self) -> tuple[int, int]:
        """(packs, bytes) condemned and still waiting for deletion."""
        packs: dict[str, int] = {}
        for record in load_records(self.repo):
            packs.update(record.packs)
        present = {p: s for p, s in packs.items() if self.repo.storage.exists("data", p)}
        return len(present), sum(present.values())
