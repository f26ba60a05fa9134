"""Repairing a damaged repository: the index, damaged packs, snapshots that lost data.

Each repair writes before it removes, so a kill at any point leaves a repository that
reads as before or as after, never worse, and running the same repair again finishes it:

- index:     read the index files that still open -> read the headers of packs no good
             index names -> write new index files (packs that are gone left out) ->
             remove the old index files.
- packs:     read every readable blob of the damaged packs -> store those with no other
             healthy copy in new packs (+ index) -> new index files without the damaged
             packs -> remove the old index files -> delete the damaged packs -> one new
             damage record holding only what is lost -> old records removed.
- snapshots: see snapshot_repair.py.

Everything here runs under the exclusive lock (operations/repair.py). `step(name)` is
called between the steps: the operation journals nothing there, but tests kill the
process at those points (vault.foundation.failpoints).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vault.errors import IntegrityError, ObjectNotFound, VaultError
from vault.repository.blob import BlobEntry
from vault.repository.condemned import condemned_packs
from vault.repository.condemned import load_records as load_condemned
from vault.repository.damage import DamageRecord, remove_record, save_record
from vault.repository.index import IndexFormatError, MasterIndex, decode_index
from vault.repository.pack import PackFormatError, read_pack_entries
from vault.repository.repository import Repository
from vault.repository.saver import BlobSaver

RawIndex = dict[str, tuple[int, dict[bytes, BlobEntry]]]  # pack -> (size, blob -> entry)
Step = Callable[[str], None]
#: packs per index file written by a repair (as prune writes them)
INDEX_PACKS_PER_FILE = 1000


def no_step(_name: str) -> None:
    """The default `step`: nothing happens between the steps."""


@dataclass
class RawIndexFiles:
    """Every index file's entries, damaged copies included (the MasterIndex leaves those
    out; a repair needs to see them to salvage or drop them)."""

    packs: RawIndex = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # every index file listed
    damaged: dict[str, str] = field(default_factory=dict)  # index file -> why unreadable


def use_index(repo: Repository, packs: RawIndex) -> None:
    """Make `packs` the repository's in-memory index (damaged copies still left out)."""
    repo.index = MasterIndex(repo.damage)
    for pack_id, (size, blobs) in packs.items():
        repo.index.add_pack(pack_id, size, blobs.values())


def read_index_files(repo: Repository) -> RawIndexFiles:
    raw = RawIndexFiles()
    for info in repo.storage.list("index"):
        raw.files.append(info.name)
        try:
            for pack_id, size, entries in decode_index(repo.cipher,
                                                       repo.storage.load("index", info.name)):
                blobs = raw.packs.setdefault(pack_id, (size, {}))[1]
                for entry in entries:
                    blobs.setdefault(entry.blob_id, entry)
        except (IndexFormatError, ObjectNotFound) as exc:
            raw.damaged[info.name] = str(exc)
    return raw


def write_index_files(repo: Repository, packs: RawIndex) -> list[str]:
    items = sorted((p, (size, list(blobs.values()))) for p, (size, blobs) in packs.items())
    return [repo.write_index(dict(items[start : start + INDEX_PACKS_PER_FILE]))
            for start in range(0, len(items), INDEX_PACKS_PER_FILE)]


def replace_index(repo: Repository, packs: RawIndex, old_files: Iterable[str],
                  step: Step) -> list[str]:
    """New index files for `packs`, then the old ones removed (a kill in between leaves
    both: their union, which names nothing that is not there)."""
    written = write_index_files(repo, packs)
    step("index-written")
    for n, name in enumerate(sorted(set(old_files) - set(written))):
        if n == 1:
            step("index-removing")
        with contextlib.suppress(ObjectNotFound):
            repo.storage.remove("index", name)
    return written


# --- repair index ----------------------------------------------------------------------


@dataclass
class IndexRepair:
    packs_indexed: int = 0
    packs_read: list[str] = field(default_factory=list)  # headers read
    packs_dropped: dict[str, str] = field(default_factory=dict)  # pack -> why (gone)
    packs_unreadable: dict[str, str] = field(default_factory=dict)  # header does not open
    index_files_damaged: dict[str, str] = field(default_factory=dict)
    index_files_written: int = 0
    index_files_removed: int = 0
    packs: RawIndex = field(default_factory=dict)  # the index it writes (or would)

    @property
    def changed(self) -> bool:
        return bool(self.packs_read or self.packs_dropped or self.index_files_damaged)


def repair_index(repo: Repository, *, read_all: bool, dry_run: bool,
                 step: Step = no_step) -> IndexRepair:
    """Rebuild the index from the index files that open and the packs' own headers."""
    raw = read_index_files(repo)
    stored = {info.name: info.size for info in repo.storage.list("data")}
    condemned = condemned_packs(load_condemned(repo))
    result = IndexRepair(index_files_damaged=raw.damaged)
    packs: RawIndex = {}
    for pack_id, (size, blobs) in raw.packs.items():
        if pack_id not in stored:
            result.packs_dropped[pack_id] = "missing"
        elif stored[pack_id] != size or read_all:
            result.packs_read.append(pack_id)
        else:
            packs[pack_id] = (size, blobs)
    result.packs_read += sorted(p for p in stored
                                if p not in raw.packs and p not in condemned)
    for pack_id in result.packs_read:
        try:
            size, entries = repo.read_pack_header(pack_id)
        except (IntegrityError, ObjectNotFound) as exc:
            result.packs_unreadable[pack_id] = str(exc)
            if pack_id in raw.packs:  # the index's entries are all that locate its blobs
                packs[pack_id] = (stored[pack_id], raw.packs[pack_id][1])
            continue
        packs[pack_id] = (size, {e.blob_id: e for e in entries})
    result.packs_indexed, result.packs = len(packs), packs
    if dry_run or not result.changed:
        return result
    step("headers-read")
    written = replace_index(repo, packs, raw.files, step)
    result.index_files_written = len(written)
    result.index_files_removed = len(set(raw.files) - set(written))
    return result


# --- repair packs ----------------------------------------------------------------------


@dataclass
class PackRepair:
    packs: list[str] = field(default_factory=list)  # the damaged packs handled
    blobs_salvaged: int = 0  # stored again in new packs
    blobs_elsewhere: int = 0  # readable, and a healthy copy exists elsewhere anyway
    lost: set[bytes] = field(default_factory=set)  # no readable copy anywhere
    packs_written: int = 0
    packs_deleted: int = 0
    unreadable: list[str] = field(default_factory=list)  # kept: no blob could be located


def damaged_packs(repo: Repository, extra: Iterable[str] = ()) -> list[str]:
    """The packs the damage records name (whole, by a blob, or by their header)."""
    damage = repo.damage
    found = set(damage.bad_packs) | set(damage.bad_headers) | set(extra)
    found |= {pack_id for _blob, pack_id in damage.bad_copies}
    return sorted(found)


def repair_packs(repo: Repository, targets: list[str], *, dry_run: bool,
                 pack_size: int, step: Step = no_step) -> PackRepair:
    """Salvage the readable blobs of `targets` into new packs; drop the packs."""
    raw = read_index_files(repo)
    result = PackRepair(packs=targets)
    doomed = set(targets)
    stored = {info.name for info in repo.storage.list("data")}
    # "Elsewhere" means: a healthy copy in a pack that stays and is there.
    use_index(repo, {p: v for p, v in raw.packs.items() if p not in doomed and p in stored})
    saver = BlobSaver(repo, pack_size=pack_size, dry_run=dry_run)
    salvaged: set[bytes] = set()
    for pack_id in targets:
        located = 0
        for entry, data in _readable_blobs(repo, pack_id, raw):
            located += 1
            if entry.blob_id in repo.index or entry.blob_id in salvaged:
                result.blobs_elsewhere += 1
            elif data is None:
                result.lost.add(entry.blob_id)
            else:
                saver.save(entry.blob_type, data, entry.blob_id)
                salvaged.add(entry.blob_id)
        if not located and pack_id in stored:
            # Neither its header nor any index file says where its blobs are: nothing
            # was read from it, so it is kept (never delete what could not be examined).
            result.unreadable.append(pack_id)
    doomed -= set(result.unreadable)
    result.blobs_salvaged = len(salvaged)
    result.lost -= salvaged
    if dry_run:
        return result
    saver.flush()
    result.packs_written = saver.stats.packs_written
    step("salvaged")
    raw = read_index_files(repo)  # now with the salvage's own index file
    kept = {p: v for p, v in raw.packs.items() if p not in doomed}
    replace_index(repo, kept, raw.files, step)
    for n, pack_id in enumerate(p for p in targets if p in doomed):
        if n == 1:
            step("packs-deleting")
        with contextlib.suppress(ObjectNotFound):
            repo.storage.remove("data", pack_id)
            result.packs_deleted += 1
    step("packs-deleted")
    return result


def _readable_blobs(repo: Repository, pack_id: str, raw: RawIndexFiles
                    ) -> Iterable[tuple[BlobEntry, bytes | None]]:
    """Each blob the pack holds (by its header, or by the index when the header is
    damaged) with its plaintext, or None when it does not read back whole."""
    known = raw.packs.get(pack_id, (0, {}))[1]
    try:
        data = repo.storage.load("data", pack_id)
    except ObjectNotFound:
        yield from ((entry, None) for entry in known.values())
        return
    try:
        entries = read_pack_entries(repo.cipher, pack_id, data)
    except PackFormatError:
        entries = list(known.values())
    for entry in entries:
        sealed = data[entry.offset : entry.offset + entry.length]
        try:
            yield entry, repo.open_blob(entry, sealed)
        except VaultError:
            yield entry, None


def rewrite_damage_records(repo: Repository, job_id: str,
                           traced: dict[str, dict[str, list[str]]] | None = None,
                           step: Step = no_step) -> DamageRecord:
    """One record holding what is still lost (blobs no index names any more, for the
    snapshots' status), saved before the old records go: a kill in between leaves both,
    never none. Call once the damaged packs are out of the index."""
    old = list(repo.damage.records)
    record = DamageRecord(found_by="repair", job_id=job_id, snapshots=dict(traced or {}))
    for previous in old:
        for snapshot_id, entry in previous.snapshots.items():
            blobs = [b for b in entry["blobs"] if bytes.fromhex(b) not in repo.index]
            if blobs:
                mine = record.snapshots.setdefault(snapshot_id, {"paths": [], "blobs": []})
                mine["paths"] += [p for p in entry["paths"] if p not in mine["paths"]]
                mine["blobs"] += [b for b in blobs if b not in mine["blobs"]]
    if record.snapshots:
        save_record(repo, record)
    step("record-saved")
    for previous in old:
        remove_record(repo, previous)
    return record
