"""Read-only questions that anchors and the repository's snapshots ask of the journal
file (docs/journal.md#anchors): where the current segment starts, whether its chain
holds, which hash a row has, and which snapshots the journal saw made."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vault.errors import JournalError
from vault.journal.chain import GENESIS_HASH, ChainVerification, verify_rows
from vault.journal.readonly import connect_read_only

TAMPERING_EVENT = "JournalTamperingDetected"
_COLUMNS = ("seq, stream_id, stream_version, type, schema_version, payload, recorded_at, "
            "actor, prev_hash, hash")


@contextmanager
def _read_only(journal_path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection (the caller has opened the journal, so it exists); SQLite
    failures become JournalError, which the CLI knows how to show."""
    try:
        conn = connect_read_only(journal_path)  # also on a full or read-only disk
        try:
            yield conn
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise JournalError(path=str(journal_path), detail=str(error)) from error


def segment_start(journal_path: Path) -> int:
    """The seq the current segment starts at: the newest JournalTamperingDetected, or 1."""
    with _read_only(journal_path) as conn:
        row = conn.execute("SELECT MAX(seq) FROM events WHERE type = ?",
                           (TAMPERING_EVENT,)).fetchone()
    return int(row[0]) if row and row[0] is not None else 1


def verify_segment(journal_path: Path, from_seq: int) -> ChainVerification:
    """The chain from `from_seq` on. The segment's first row is checked against its own
    stored prev_hash: what precedes it was found tampered and is kept as it is."""
    with _read_only(journal_path) as conn:
        start = (0, GENESIS_HASH)
        if from_seq > 1:
            first = conn.execute("SELECT prev_hash FROM events WHERE seq = ?",
                                 (from_seq,)).fetchone()
            if first is not None:
                start = (from_seq - 1, str(first[0]))
        cursor = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE seq >= ? ORDER BY seq",
                              (from_seq,))
        return verify_rows(cursor, start)


def hash_at(journal_path: Path, seq: int) -> str | None:
    """The stored hash of row `seq`, or None when there is no such row."""
    with _read_only(journal_path) as conn:
        row = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else str(row[0])


def recorded_snapshots(journal_path: Path, repo_id: str) -> dict[str, int]:
    """{snapshot id: seq of the event that recorded it made} for every snapshot of
    `repo_id` this journal saw made (BackupCompleted, SnapshotImported, the copy a
    SnapshotRepaired wrote) and not forgotten. Matched by type name, so it reads journals
    holding types this vault does not know."""
    sql = ("SELECT seq, type, json_extract(payload, '$.snapshot_id') AS snapshot_id"
           " FROM events WHERE type IN ('BackupCompleted', 'SnapshotImported',"
           " 'SnapshotRepaired', 'SnapshotForgotten')"
           " AND json_extract(payload, '$.repo_id') = ? ORDER BY seq")
    made: dict[str, int] = {}
    with _read_only(journal_path) as conn:
        for row in conn.execute(sql, (repo_id,)):
            if row["type"] == "SnapshotForgotten":
                made.pop(str(row["snapshot_id"]), None)
            else:
                made[str(row["snapshot_id"])] = int(row["seq"])
    return made
