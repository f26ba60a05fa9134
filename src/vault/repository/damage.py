"""Damage records: blobs and packs found unreadable, remembered so they are never reused.

When verify (or a restore, or a backup) finds a blob that does not open or a pack that is
gone, it writes a *damage record* (a sealed object of kind "damaged"). Every later session
loads the records before the index and leaves the damaged copies out of it, so:

- a backup that meets the same content stores it again (dedup never trusts a copy known to
  be bad), and from then on the index names the new, healthy copy: old snapshots that use
  the blob are whole again too ("self-healing", as restic >= 0.16 does it);
- a snapshot that still relies on a blob with no healthy copy is *corrupted*, and the
  record says which snapshots and paths that affects;
- `vault repair packs` salvages what can be read, and the records are then rewritten to
  hold only what is still lost (see docs/repair.md).

Records are immutable like every object: a new record is saved before an old one is
removed, so a crash leaves both (their union), never none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vault.repository.records import load_docs, remove_doc, save_doc

if TYPE_CHECKING:
    from vault.repository.repository import Repository

_AAD = b"vault-damage-v1"
RECORD_VERSION = 1
#: paths kept per snapshot in a record: enough to name the loss, bounded in size
MAX_PATHS = 1000


@dataclass
class DamageRecord:
    """What one run found. `blobs`: blob id hex -> (pack id, reason) of a bad *copy*;
    `packs`: pack id -> reason for a pack that is gone or unreadable as a whole;
    `snapshots`: snapshot id -> {"paths": [...], "blobs": [blob id hex, ...]}."""

    found_by: str
    job_id: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    blobs: dict[str, tuple[str, str]] = field(default_factory=dict)
    packs: dict[str, str] = field(default_factory=dict)
    snapshots: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: pack id -> reason, for a pack whose header is damaged while its blobs may be fine
    headers: dict[str, str] = field(default_factory=dict)
    name: str = field(default="", compare=False)

    def __bool__(self) -> bool:
        return bool(self.blobs or self.packs)

    def to_doc(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "created": self.created, "found_by": self.found_by,
                "job_id": self.job_id,
                "blobs": {b: list(where) for b, where in sorted(self.blobs.items())},
                "packs": dict(sorted(self.packs.items())),
                "headers": dict(sorted(self.headers.items())),
                "snapshots": {s: {"paths": v["paths"][:MAX_PATHS], "blobs": sorted(v["blobs"])}
                              for s, v in sorted(self.snapshots.items())}}

    @classmethod
    def from_doc(cls, doc: dict[str, Any], name: str) -> DamageRecord:
        return cls(
            found_by=str(doc["found_by"]), job_id=doc.get("job_id"),
            created=str(doc["created"]),
            blobs={str(b): (str(w[0]), str(w[1])) for b, w in doc["blobs"].items()},
            packs={str(p): str(r) for p, r in doc["packs"].items()},
            headers={str(p): str(r) for p, r in doc.get("headers", {}).items()},
            snapshots={str(s): {"paths": [str(p) for p in v["paths"]],
                                "blobs": [str(b) for b in v["blobs"]]}
                       for s, v in doc["snapshots"].items()},
            name=name)


@dataclass
class Damage:
    """Every record merged: what the index must leave out, and what it affected."""

    records: list[DamageRecord] = field(default_factory=list)
    bad_copies: set[tuple[bytes, str]] = field(default_factory=set)  # (blob id, pack id)
    bad_packs: dict[str, str] = field(default_factory=dict)  # pack id -> reason
    bad_headers: dict[str, str] = field(default_factory=dict)  # pack id -> reason
    reasons: dict[bytes, str] = field(default_factory=dict)  # blob id -> why it is bad
    since: str | None = None  # when the oldest record was written

    @classmethod
    def merge(cls, records: Iterable[DamageRecord]) -> Damage:
        damage = cls()
        for record in records:
            damage.add(record)
        return damage

    def add(self, record: DamageRecord) -> None:
        self.records.append(record)
        self.since = min(self.since or record.created, record.created)
        self.bad_packs.update(record.packs)
        self.bad_headers.update(record.headers)
        for blob_hex, (pack_id, reason) in record.blobs.items():
            blob_id = bytes.fromhex(blob_hex)
            self.bad_copies.add((blob_id, pack_id))
            self.reasons[blob_id] = f"in pack {pack_id[:12]}: {reason}"

    def reason(self, blob_id: bytes, pack_id: str | None = None) -> str | None:
        """Why `blob_id` (as found in `pack_id`, if known) is bad, or None."""
        if pack_id is not None and pack_id in self.bad_packs:
            return f"pack {pack_id[:12]}: {self.bad_packs[pack_id]}"
        return self.reasons.get(blob_id)

    def is_bad_copy(self, blob_id: bytes, pack_id: str) -> bool:
        return pack_id in self.bad_packs or (blob_id, pack_id) in self.bad_copies

    def affected_blobs(self, snapshot_id: str) -> set[bytes]:
        """Blobs of `snapshot_id` that some record found bad."""
        found: set[bytes] = set()
        for record in self.records:
            entry = record.snapshots.get(snapshot_id)
            if entry:
                found.update(bytes.fromhex(b) for b in entry["blobs"])
        return found

    def affected_paths(self, snapshot_id: str) -> list[str]:
        paths: list[str] = []
        for record in self.records:
            entry = record.snapshots.get(snapshot_id)
            if entry:
                paths.extend(p for p in entry["paths"] if p not in paths)
        return paths

    def snapshot_ids(self) -> set[str]:
        return {s for record in self.records for s in record.snapshots}


def save_record(repo: Repository, record: DamageRecord) -> str:
    record.name = save_doc(repo, "damaged", _AAD, record.to_doc())
    return record.name


def remove_record(repo: Repository, record: DamageRecord) -> None:
    remove_doc(repo, "damaged", record.name)


def load_records(repo: Repository) -> list[DamageRecord]:
    """Every readable record, oldest first. An unreadable record is skipped (and its
    damage found again by the next verify)."""
    records = []
    for name, doc in load_docs(repo, "damaged", _AAD, RECORD_VERSION):
        try:
            records.append(DamageRecord.from_doc(doc, name))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            continue
    return sorted(records, key=lambda r: (r.created, r.name))


def corrupted_snapshots(repo: Repository) -> dict[str, list[str]]:
    """Snapshot id -> damaged paths, for every snapshot that still relies on a blob with
    no healthy copy. Costs one listing when the repository has no damage records; the
    index is loaded only when it has some."""
    if not repo.storage_has_damage_records():
        return {}
    index = repo.load_index()
    damage = repo.damage
    return {snapshot_id: damage.affected_paths(snapshot_id)
            for snapshot_id in damage.snapshot_ids()
            if any(b not in index for b in damage.affected_blobs(snapshot_id))}


def snapshot_status(status: str, tags: list[str], corrupted: bool) -> str:
    """What a snapshot's status is once verification is taken into account:
    `corrupted` (damage found and not repaired), `repaired` (written by `vault repair
    snapshots`), else what the backup recorded (`completed` or `partial`)."""
    if corrupted:
        return "corrupted"
    if "repaired" in tags:
        return "repaired"
    return status
