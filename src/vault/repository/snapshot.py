"""Snapshot objects: a root tree plus everything an operator needs to know about it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SnapshotSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes_raw: int = 0  # size of every file in the snapshot
    bytes_read: int = 0  # bytes actually read (unchanged files are skipped)
    bytes_new: int = 0  # plaintext bytes of blobs this snapshot added
    bytes_stored: int = 0  # bytes those blobs take in the repository (compressed + sealed)
    blobs_new: int = 0
    duration_seconds: float = 0.0


class FileProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    error: str


SNAPSHOT_VERSION = 1


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    time: datetime
    host: str
    user: str
    uid: int
    paths: list[str]
    tags: list[str] = Field(default_factory=list)
    tree: str  # hex id of the root tree blob
    parent: str | None = None
    backup_type: Literal["full", "incremental"] = "incremental"
    status: Literal["completed", "partial"] = "completed"
    source: dict[str, Any] = Field(default_factory=lambda: {"type": "files"})
    filters: dict[str, Any] = Field(default_factory=dict)
    summary: SnapshotSummary = Field(default_factory=SnapshotSummary)
    errors: list[FileProblem] = Field(default_factory=list)
    vault_version: str
    job_id: str | None = None
    # Sources backed up together share a group: one id and the time the group started.
    group_id: str | None = None
    group_time: datetime | None = None
    # When this snapshot's data was captured: a database's consistent point (its read
    # transaction, exported snapshot or snapshot session), or when reading files began
    # (they are read as they are until `time`). Compared across a group's members.
    captured_at: datetime | None = None
    # Written by `vault repair snapshots`: the damaged original's id, and what the repair
    # left out (repository/snapshot_repair.py).
    repaired_from: str | None = None
    repair: dict[str, Any] | None = None
    # Written by `vault copy`: the id of the snapshot this one is a copy of, in the
    # repository it was first taken in (a copy of a copy keeps the first id), as restic's
    # `original`; a copy already made is recognised by it (operations/copy.py).
    original: str | None = None

    # Filled in on load: the snapshot's storage id (not part of the stored document).
    id: str = Field(default="", exclude=True)

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def stored_doc(self) -> dict[str, Any]:
        """The document saved in the repository. Fields added to format 1 later are left
        out while unset, so a snapshot that does not use them reads in an older vault of
        the same format (which refuses fields it does not know)."""
        unset = {name for name in LATER_FIELDS if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=unset)


#: optional fields added to snapshot format 1 after it shipped (see `stored_doc`)
LATER_FIELDS = ("captured_at", "repaired_from", "repair", "original")


# --- what a snapshot holds --------------------------------------------------------------------
# Options that change how a backup ran but not what it holds: they never split a selection.
_RUN_OPTIONS = frozenset({"force"})


def source_name(snapshot: Snapshot) -> str:
    """The source a snapshot is of: its configured name or label, else its paths."""
    name = snapshot.source.get("label") or snapshot.source.get("name")
    return str(name) if name else ",".join(snapshot.paths)


def entity_selection(snapshot: Snapshot) -> dict[str, Any] | None:
    """The entity narrowing (`backup --entity NAME=IDS`) a database snapshot was taken
    with, as {"entity": NAME, "ids": [...]}; None when it holds the whole source."""
    described = snapshot.source.get("describe") or {}
    found = described.get("entity") or (described.get("filters") or {}).get("entity")
    return dict(found) if found else None


def selection_key(snapshot: Snapshot) -> str:
    """What a snapshot holds of its source, as one stable line ("" = no narrowing at all):
    the entity ids, the tables or collections and the include/exclude filters it was taken
    with. Two snapshots of one source with the same key hold the same kind of thing; an
    empty or missing option counts as not given (older snapshots record fewer options)."""
    described = snapshot.source.get("describe") or {}
    options: dict[str, Any] = {
        key: value for key, value in snapshot.filters.items()
        if value and key not in _RUN_OPTIONS}
    if described.get("tables"):
        options["tables"] = sorted(described["tables"])
    mongo = {k: v for k, v in (described.get("filters") or {}).items() if k != "entity" and v}
    options.update(mongo)
    parts = [f"{key}={json.dumps(options[key], sort_keys=True, separators=(',', ':'))}"
             for key in sorted(options)]
    entity = entity_selection(snapshot)
    if entity is not None:
        ids = ",".join(sorted(str(i) for i in entity.get("ids", [])))
        parts.insert(0, f"entity {entity.get('entity')}={ids}")
    return " ".join(parts)
