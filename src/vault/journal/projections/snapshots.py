"""The `snapshots` table: every snapshot a backup job recorded, and what became of it.

Only snapshots this journal saw created get a row (and the repaired copies of those, from
SnapshotRepaired); a SnapshotCorrupted or SnapshotForgotten about a snapshot made elsewhere
changes nothing here (the event itself is still in the log). A verify that finds nothing
wrong puts every `corrupted` snapshot of its repository back to what its backup recorded
(`backup_status`): the damage was healed (docs/repair.md).
"""

from __future__ import annotations

import sqlite3

from vault.journal.events import (
    BackupCompleted,
    Event,
    RecordedEvent,
    SnapshotCorrupted,
    SnapshotForgotten,
    SnapshotRepaired,
    VerifyCompleted,
    canonical_json,
)
from vault.journal.projections.base import Handler, TableProjection, upsert


def _completed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, BackupCompleted)
    row = {
        "snapshot_id": event.snapshot_id,
        "repo_id": event.repo_id,
        "job_id": event.job_id,
        "snapshot_time": event.snapshot_time,
        "host": event.host,
        "paths": canonical_json(event.paths),
        "tags": canonical_json(event.tags),
        "status": event.status,
        "backup_status": event.status,
        "backup_type": event.backup_type,
        "parent": event.parent,
        "files": event.files_new + event.files_changed + event.files_unmodified,
        "dirs": event.dirs,
        "bytes_raw": event.bytes_raw,
        "bytes_new": event.bytes_new,
        "bytes_stored": event.bytes_stored,
        "duration_seconds": event.duration_seconds,
        "recorded_seq": recorded.seq,
        "source_type": event.source_type,
        "source": event.source,
        "group_id": event.group_id,
    }
    upsert(conn, "snapshots", "snapshot_id", row)


def _set_status(conn: sqlite3.Connection, snapshot_id: str, status: str) -> None:
    conn.execute("UPDATE snapshots SET status = ? WHERE snapshot_id = ?", (status, snapshot_id))


def _corrupted(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    assert isinstance(recorded.event, SnapshotCorrupted)
    _set_status(conn, recorded.event.snapshot_id, "corrupted")


def _forgotten(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    assert isinstance(recorded.event, SnapshotForgotten)
    _set_status(conn, recorded.event.snapshot_id, "forgotten")


def _repaired(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    """The repaired copy gets the original's row (same time, paths, source)."""
    event = recorded.event
    assert isinstance(event, SnapshotRepaired)
    conn.execute(
        """INSERT OR REPLACE INTO snapshots
           SELECT ?, repo_id, ?, snapshot_time, host, paths, tags, 'repaired',
                  backup_status, backup_type, parent, files, dirs, bytes_raw, 0, 0,
                  duration_seconds, ?, source_type, source, group_id
           FROM snapshots WHERE snapshot_id = ?""",
        (event.snapshot_id, event.job_id, recorded.seq, event.original_id))


def _verified(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, VerifyCompleted)
    if event.ok:
        conn.execute("UPDATE snapshots SET status = backup_status "
                     "WHERE repo_id = ? AND status = 'corrupted'", (event.repo_id,))


class SnapshotsProjection(TableProjection):
    name = "snapshots"
    tables = ("snapshots",)
    ddl = (
        """CREATE TABLE snapshots (
    snapshot_id      TEXT PRIMARY KEY,
    repo_id          TEXT NOT NULL,
    job_id           TEXT NOT NULL,
    snapshot_time    TEXT NOT NULL,
    host             TEXT NOT NULL,
    paths            TEXT NOT NULL,
    tags             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                     ('completed', 'partial', 'corrupted', 'forgotten', 'repaired')),
    backup_status    TEXT NOT NULL CHECK (backup_status IN ('completed', 'partial')),
    backup_type      TEXT NOT NULL CHECK (backup_type IN ('full', 'incremental')),
    parent           TEXT,
    files            INTEGER NOT NULL,
    dirs             INTEGER NOT NULL,
    bytes_raw        INTEGER NOT NULL,
    bytes_new        INTEGER NOT NULL,
    bytes_stored     INTEGER NOT NULL,
    duration_seconds REAL NOT NULL,
    recorded_seq     INTEGER NOT NULL,
    source_type      TEXT NOT NULL DEFAULT 'files',
    source           TEXT,
    group_id         TEXT
)""",
        "CREATE INDEX snapshots_repo_time ON snapshots (repo_id, snapshot_time)",
    )

    def handlers(self) -> dict[type[Event], Handler]:
        return {
            BackupCompleted: _completed,
            SnapshotCorrupted: _corrupted,
            SnapshotForgotten: _forgotten,
            SnapshotRepaired: _repaired,
            VerifyCompleted: _verified,
        }
