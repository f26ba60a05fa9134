"""Snapshot objects: a root tree plus everything an operator needs to know about it."""

from __future__ import annotations

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
    # Sources backed up together share a group: one id and one point in time.
    group_id: str | None = None
    group_time: datetime | None = None

    # Filled in on load: the snapshot's storage id (not part of the stored document).
    id: str = Field(default="", exclude=True)

    @property
    def short_id(self) -> str:
        return self.id[:8]
