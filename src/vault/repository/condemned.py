"""Condemned packs: taken out of the index by prune, deleted once nothing can need them.

Prune never deletes a pack in the run that drops it from the index: a backup running at
the same moment may have deduplicated against a blob in it. It writes a *condemned
record* instead (a sealed object of kind "condemned"), and a later step deletes the packs
once every lock that existed when the pack left the index is gone — see docs/prune.md.

A record lists the packs, the index files its prune run replaces, and the ids of the locks
alive once those index files were gone (``None`` while that switch is unfinished).

Whoever commits a snapshot checks the records before and after saving it and re-indexes
("rescues") every condemned pack that holds a blob the snapshot relies on; prune checks
the snapshots after writing a record. Whichever of the two writes second sees the other's
write, so a snapshot never keeps relying on a pack that is about to go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vault.errors import IntegrityError, ObjectNotFound
from vault.repository.blob import BlobEntry
from vault.repository.records import load_docs, remove_doc, save_doc

if TYPE_CHECKING:
    from vault.repository.repository import Repository

_AAD = b"vault-condemned-v1"
RECORD_VERSION = 1


@dataclass
class CondemnedRecord:
    created: str
    job_id: str
    packs: dict[str, int]  # pack id -> size
    old_index: list[str]  # index files this prune run replaces
    locks: list[str] | None  # locks alive once the old index was gone; None: unfinished
    name: str = field(default="", compare=False)

    @property
    def switched(self) -> bool:
        """Whether the index switch that condemned these packs has completed."""
        return self.locks is not None

    def to_doc(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "created": self.created, "job_id": self.job_id,
                "packs": self.packs, "old_index": self.old_index, "locks": self.locks}


def save_record(repo: Repository, record: CondemnedRecord) -> str:
    record.name = save_doc(repo, "condemned", _AAD, record.to_doc())
    return record.name


def replace_record(repo: Repository, old: CondemnedRecord, new: CondemnedRecord) -> None:
    """The new record first, then the old one removed: a crash leaves both, never none."""
    save_record(repo, new)
    remove_record(repo, old)


def remove_record(repo: Repository, record: CondemnedRecord) -> None:
    remove_doc(repo, "condemned", record.name)


def load_records(repo: Repository) -> list[CondemnedRecord]:
    """Every readable record, oldest first.

    An unreadable record is skipped: its packs then count as unindexed, which only makes
    them eligible for recovery into the index (never for deletion).
    """
    records = []
    for name, doc in load_docs(repo, "condemned", _AAD, RECORD_VERSION):
        try:
            record = CondemnedRecord(
                created=str(doc["created"]), job_id=str(doc["job_id"]),
                packs={str(k): int(v) for k, v in doc["packs"].items()},
                old_index=[str(n) for n in doc["old_index"]],
                locks=None if doc["locks"] is None else [str(n) for n in doc["locks"]],
                name=name)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        records.append(record)
    return sorted(records, key=lambda r: (r.created, r.name))


def condemned_packs(records: Iterable[CondemnedRecord]) -> set[str]:
    return {pack for record in records for pack in record.packs}


def rescue_packs(repo: Repository, pack_ids: Iterable[str]) -> list[str]:
    """Put condemned packs back in the index (from their own headers); returns those done.

    A pack that is gone or whose header does not open is skipped: it cannot be read anyway.
    """
    found: dict[str, tuple[int, list[BlobEntry]]] = {}
    for pack_id in sorted(set(pack_ids)):
        try:
            found[pack_id] = repo.read_pack_header(pack_id)
        except (ObjectNotFound, IntegrityError):
            continue
    if found:
        repo.write_index(found)
    return sorted(found)


def rescue_pinned(repo: Repository, pinned: set[bytes]) -> list[str]:
    """Re-index every condemned pack holding a blob in ``pinned`` (as this session's index
    locates it). Cheap when nothing is condemned: one listing."""
    if not pinned:
        return []
    condemned = condemned_packs(load_records(repo))
    if not condemned:
        return []
    index = repo.index
    needed = set()
    for blob_id in pinned:
        entry = index.get(blob_id)
        if entry is not None and entry.pack_id in condemned:
            needed.add(entry.pack_id)
    return rescue_packs(repo, needed) if needed else []
