"""Read-only queries over the journal's projections and raw events, for `vault status`.

They read on a `mode=ro` connection (as `read_jobs` does) and look at payloads as JSON,
not as event models: a status must still show while the journal holds event types this
vault does not know yet (`ScheduleRunMissed` from a newer scheduler, say).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.journal.readonly import connect_read_only

_ACTIVE = ("requested", "queued", "running")
_FINISHED = ("completed", "partial", "failed", "interrupted")


@contextmanager
def _read_only(journal_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect_read_only(journal_path)
    try:
        yield conn
    finally:
        conn.close()


def parse_time(text: str | None) -> datetime | None:
    """A journal time (`...Z`) or ISO 8601 string as an aware datetime."""
    return datetime.fromisoformat(text) if text else None


def _with_request(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    request = record.pop("request", None)
    record["request"] = json.loads(request) if request else {}
    return record


def backup_jobs(journal_path: Path, *, active: bool) -> list[dict[str, Any]]:
    """Backup jobs that are still running (`active`) or finished, newest first, each with
    its `request` (the BackupRequested payload, {} if none), the time of its newest event
    (`last_event_at`) and, for a finished one, its snapshot's sizes and problem count."""
    statuses = _ACTIVE if active else _FINISHED
    sql = f"""
        SELECT j.*, e.recorded_at AS last_event_at, r.payload AS request,
               s.bytes_raw AS snapshot_bytes_raw, s.bytes_new AS snapshot_bytes_new,
               s.source_type AS snapshot_source_type, s.source AS snapshot_source,
               s.paths AS snapshot_paths,
               CASE WHEN json_valid(j.summary)
                    THEN json_array_length(j.summary, '$.errors') END AS problems
        FROM jobs j
        LEFT JOIN events e ON e.seq = j.last_seq
        LEFT JOIN events r ON r.stream_id = j.job_id AND r.type = 'BackupRequested'
        LEFT JOIN snapshots s ON s.snapshot_id = j.snapshot_id
        WHERE j.kind = 'backup' AND j.status IN ({', '.join('?' for _ in statuses)})
        ORDER BY j.last_seq DESC"""
    with _read_only(journal_path) as conn:
        return [_with_request(row) for row in conn.execute(sql, statuses)]


def other_active_jobs(journal_path: Path) -> list[dict[str, Any]]:
    """Restore and verify jobs still running, with `last_event_at`, newest first."""
    sql = f"""
        SELECT j.*, e.recorded_at AS last_event_at FROM jobs j
        LEFT JOIN events e ON e.seq = j.last_seq
        WHERE j.kind != 'backup' AND j.status IN ({', '.join('?' for _ in _ACTIVE)})
        ORDER BY j.last_seq DESC"""
    with _read_only(journal_path) as conn:
        return [dict(row) for row in conn.execute(sql, _ACTIVE)]


def events_of_type(journal_path: Path, type_name: str, *, stream_id: str | None = None,
                   since: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Raw events of one type name, newest first: {seq, stream_id, recorded_at, payload}.
    Works for type names this vault has no class for."""
    sql = "SELECT seq, stream_id, recorded_at, payload FROM events WHERE type = ?"
    params: list[Any] = [type_name]
    if stream_id is not None:
        sql += " AND stream_id = ?"
        params.append(stream_id)
    if since is not None:
        sql += " AND recorded_at >= ?"
        params.append(since)
    sql += " ORDER BY seq DESC LIMIT ?"
    params.append(limit)
    with _read_only(journal_path) as conn:
        return [{**dict(row), "payload": json.loads(row["payload"])}
                for row in conn.execute(sql, params)]


def verify_history(journal_path: Path, repo_id: str) -> dict[str, Any]:
    """What the journal knows of this repository's verification: the newest
    `VerifyCompleted` and the newest with ok=true (payload + recorded_at, or None), the
    snapshots the newest verify found corrupted (id -> paths) less those forgotten or
    repaired since, and when the repository's first backup completed."""
    base = "SELECT seq, recorded_at, payload FROM events WHERE type = ? AND " \
           "json_extract(payload, '$.repo_id') = ?"
    with _read_only(journal_path) as conn:
        def newest(type_name: str, extra: str = "") -> dict[str, Any] | None:
            row = conn.execute(f"{base}{extra} ORDER BY seq DESC LIMIT 1",
                               (type_name, repo_id)).fetchone()
            return {**dict(row), "payload": json.loads(row["payload"])} if row else None

        last = newest("VerifyCompleted")
        last_ok = newest("VerifyCompleted", " AND json_extract(payload, '$.ok')")
        first_backup = conn.execute(f"{base} ORDER BY seq LIMIT 1",
                                    ("BackupCompleted", repo_id)).fetchone()
        damaged: dict[str, list[str]] = {}
        if last is not None:
            for row in conn.execute(f"{base} AND json_extract(payload, '$.job_id') = ?",
                                    ("SnapshotCorrupted", repo_id, last["payload"]["job_id"])):
                payload = json.loads(row["payload"])
                damaged[payload["snapshot_id"]] = payload["paths"]
            for type_name, key in (("SnapshotForgotten", "$.snapshot_id"),
                                   ("SnapshotRepaired", "$.original_id")):
                for row in conn.execute(f"SELECT json_extract(payload, '{key}') FROM events "
                                        "WHERE type = ? AND seq > ?",
                                        (type_name, last["seq"])):
                    damaged.pop(row[0], None)
    return {"last": last, "last_ok": last_ok, "damaged": damaged,
            "first_backup_at": first_backup["recorded_at"] if first_backup else None}

