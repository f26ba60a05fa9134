"""The `schedules` table: every schedule the journal knows, and where its timetable stands.

A row per schedule added with `vault schedule add` or seen in vault.toml by a worker or a
`vault schedule` command (`ScheduleAdded`); removed with `ScheduleRemoved`. `paused` is
NULL until `vault schedule pause`/`resume` overrides the definition's own `paused`;
`ScheduleRetentionChanged` replaces the retention in a definition.
`last_due` is the newest due time already handled (run, missed or skipped): the
scheduler plans from it. `last_run_*` describe the newest run, manual ones included.
Times are ISO 8601 UTC strings as the events carry them.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.journal.events import (
    Event,
    RecordedEvent,
    ScheduleAdded,
    SchedulePaused,
    ScheduleRemoved,
    ScheduleResumed,
    ScheduleRetentionChanged,
    ScheduleRunCompleted,
    ScheduleRunMissed,
    ScheduleRunQueued,
    ScheduleRunSkipped,
    canonical_json,
)
from vault.journal.projections.base import Handler, TableProjection
from vault.journal.readonly import connect_read_only


def _later(old: str | None, new: str | None) -> str | None:
    """The later of two ISO times (compared as instants, not as text)."""
    if old is None or new is None:
        return old or new
    return new if datetime.fromisoformat(new) > datetime.fromisoformat(old) else old


def _row(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    conn_row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()
    return conn_row


def _timetable(definition: dict[str, Any]) -> tuple[Any, Any]:
    return definition.get("cron"), definition.get("timezone", "UTC")


def _added(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, ScheduleAdded)
    old = _row(conn, event.name)
    if old is not None and _timetable(json.loads(old["definition"])) == \
            _timetable(event.definition):
        # Same timetable (e.g. only tags or retention changed): the plan goes on as it was.
        conn.execute("UPDATE schedules SET origin = ?, definition = ?, updated_seq = ? "
                     "WHERE name = ?", (event.origin, canonical_json(event.definition),
                                        recorded.seq, event.name))
        return
    # New, or a new timetable: it starts afresh at `since` (earlier due times of the new
    # expression would otherwise look missed). A pause given on the command line stays.
    conn.execute(
        "INSERT INTO schedules (name, origin, definition, created_at, updated_seq) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET origin = excluded.origin, "
        "definition = excluded.definition, created_at = excluded.created_at, "
        "last_due = NULL, updated_seq = excluded.updated_seq",
        (event.name, event.origin, canonical_json(event.definition), event.since, recorded.seq))


def _removed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    assert isinstance(recorded.event, ScheduleRemoved)
    conn.execute("DELETE FROM schedules WHERE name = ?", (recorded.event.name,))


def _retention_changed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, ScheduleRetentionChanged)
    old = _row(conn, event.name)
    if old is None:
        return
    # Only the policy changes: the timetable, and so where it stands, goes on as it was.
    definition = {**json.loads(old["definition"]), "retention": event.retention}
    _set(conn, recorded, event.name, definition=canonical_json(definition))


def _set(conn: sqlite3.Connection, recorded: RecordedEvent, name: str, **values: Any) -> None:
    sets = ", ".join(f"{column} = ?" for column in values)  # column names come from code
    conn.execute(f"UPDATE schedules SET {sets}, updated_seq = ? WHERE name = ?",
                 [*values.values(), recorded.seq, name])


def _advance(conn: sqlite3.Connection, recorded: RecordedEvent, name: str, due: str | None,
             **values: Any) -> None:
    old = _row(conn, name)
    if old is not None:
        _set(conn, recorded, name, last_due=_later(old["last_due"], due), **values)


def _paused(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    assert isinstance(recorded.event, SchedulePaused)
    _set(conn, recorded, recorded.event.name, paused=1)


def _resumed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, ScheduleResumed)
    _advance(conn, recorded, event.name, event.last_due, paused=0)


def _queued(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, ScheduleRunQueued)
    old = _row(conn, event.name)
    if old is None:
        return
    run = {"last_run_key": event.run_key, "last_run_at": recorded.recorded_at.isoformat(),
           "last_job_ids": canonical_json(event.job_ids), "last_result": "queued"}
    # A manual run leaves the timetable alone.
    due = old["last_due"] if event.manual else _later(old["last_due"], event.due)
    _set(conn, recorded, event.name, last_due=due, **run)


def _missed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, ScheduleRunMissed)
    old = _row(conn, event.name)
    if old is not None:
        _advance(conn, recorded, event.name, event.last_due,
                 missed_total=old["missed_total"] + event.missed_count)


def _skipped(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, ScheduleRunSkipped)
    _advance(conn, recorded, event.name, event.last_due)


def _completed(conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, ScheduleRunCompleted)
    conn.execute("UPDATE schedules SET last_result = ?, updated_seq = ? "
                 "WHERE name = ? AND last_run_key = ?",
                 (event.status, recorded.seq, event.name, event.run_key))


class SchedulesProjection(TableProjection):
    name = "schedules"
    tables = ("schedules",)
    ddl = (
        """CREATE TABLE schedules (
    name         TEXT PRIMARY KEY,
    origin       TEXT NOT NULL CHECK (origin IN ('config', 'cli')),
    definition   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    paused       INTEGER,
    last_due     TEXT,
    last_run_key TEXT,
    last_run_at  TEXT,
    last_job_ids TEXT NOT NULL DEFAULT '[]',
    last_result  TEXT,
    missed_total INTEGER NOT NULL DEFAULT 0,
    updated_seq  INTEGER NOT NULL
)""",
        "CREATE INDEX schedules_result ON schedules (last_result)",
    )

    def handlers(self) -> dict[type[Event], Handler]:
        return {
            ScheduleAdded: _added,
            ScheduleRemoved: _removed,
            SchedulePaused: _paused,
            ScheduleResumed: _resumed,
            ScheduleRetentionChanged: _retention_changed,
            ScheduleRunQueued: _queued,
            ScheduleRunMissed: _missed,
            ScheduleRunSkipped: _skipped,
            ScheduleRunCompleted: _completed,
        }


def read_schedule_rows(journal_path: Path) -> list[dict[str, Any]]:
    """Every row of the `schedules` table, by name, read on a read-only connection."""
    conn = connect_read_only(journal_path)
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM schedules ORDER BY name")]
    finally:
        conn.close()
