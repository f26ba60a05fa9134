"""The journal screen's data: pages of the event log, newest first, and one event in full.

Every read runs on its own `mode=ro` connection (as vault.journal.queries does) and looks
at payloads as JSON, not as event models, so events of types this vault does not know
still show. Pages are keyset queries on `seq` with a LIMIT: a journal of 100k events costs
one page per look, never a read of the whole table.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.errors import JournalError
from vault.foundation.sqlite_readonly import open_read_only
from vault.journal import format_time
from vault_tui.data.filters import parse_filter_text, parse_moment
from vault_tui.data.summaries import event_level, event_summary

#: events read per page (a screenful or two at 120x40; one keyset query each)
PAGE_SIZE = 200

_COLUMNS = ("seq, stream_id, stream_version, type, schema_version, payload, recorded_at, "
            "actor, prev_hash, hash")


@contextmanager
def read_only(journal_path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the journal, or None when there is no journal yet (no
    vault command ran). SQLite failures become a JournalError with a one-line message."""
    if not journal_path.exists():
        yield None
        return
    try:
        conn = open_read_only(journal_path, timeout=30)
    except sqlite3.Error as exc:
        raise JournalError(path=str(journal_path), detail=str(exc)) from exc
    try:
        conn.row_factory = sqlite3.Row
        yield conn
    except sqlite3.Error as exc:
        raise JournalError(path=str(journal_path), detail=str(exc)) from exc
    finally:
        conn.close()


@dataclass(frozen=True)
class EventLine:
    """One event as a table row: never the payload itself, only a one-line summary."""

    seq: int
    stream_id: str
    type: str
    recorded_at: datetime
    actor: str
    summary: str
    level: str  # "error", "warn" or ""


@dataclass(frozen=True)
class EventDetail:
    """One event in full, for the payload dialog."""

    seq: int
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    recorded_at: datetime
    actor: dict[str, Any]
    payload: Any
    prev_hash: str
    hash: str

    def payload_json(self) -> str:
        return json.dumps(self.payload, indent=2, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class EventFilter:
    """What the operator typed: `type:Backup actor:alice stream:JOB since:2026-11-01
    until:2026-11-30 words`. Types match by prefix; several of one key are alternatives;
    the words must all appear in the event (its type, stream or payload)."""

    types: tuple[str, ...] = ()
    actors: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    words: tuple[str, ...] = ()

    def where(self) -> tuple[list[str], list[Any]]:
        """SQL conditions and their parameters (`+column`: see `events_query`)."""
        where: list[str] = []
        params: list[Any] = []
        for condition, values in (
                ("+type GLOB ?", [_glob_escape(t) + "*" for t in self.types]),
                ("+json_extract(actor, '$.user') = ?", list(self.actors)),
                ("stream_id = ?", list(self.streams))):  # a stream is small: its index
            if values:
                where.append("(" + " OR ".join([condition] * len(values)) + ")")
                params += values
        if self.since is not None:
            where.append("+recorded_at >= ?")
            params.append(format_time(self.since))
        if self.until is not None:
            where.append("+recorded_at <= ?")
            params.append(format_time(self.until))
        for word in self.words:
            where.append("(instr(lower(payload), ?) OR instr(lower(stream_id), ?) "
                         "OR instr(lower(type), ?))")
            params += [word.lower()] * 3
        return where, params


def parse_event_filter(text: str) -> EventFilter:
    """The filter bar's text as an EventFilter. Raises UsageError naming a bad token."""
    tokens, words = parse_filter_text(text, ("type", "actor", "stream", "since", "until"))
    since = parse_moment(tokens["since"][-1], "since") if tokens["since"] else None
    until = parse_moment(tokens["until"][-1], "until", end_of_day=True) \
        if tokens["until"] else None
    return EventFilter(types=tuple(tokens["type"]), actors=tuple(tokens["actor"]),
                       streams=tuple(tokens["stream"]), since=since, until=until,
                       words=tuple(words))


def read_events(journal_path: Path, wanted: EventFilter, *, before_seq: int | None = None,
                after_seq: int | None = None, limit: int = PAGE_SIZE) -> list[EventLine]:
    """Up to `limit` events matching `wanted`, newest first, older than `before_seq`
    and newer than `after_seq` when given (the keyset of the next and the newer page)."""
    sql, params = events_query(wanted, before_seq, after_seq, limit)
    with read_only(journal_path) as conn:
        if conn is None:
            return []
        return [_line(row) for row in conn.execute(sql, params)]


def events_query(wanted: EventFilter, before_seq: int | None, after_seq: int | None,
                 limit: int) -> tuple[str, list[Any]]:
    """The page's SQL. It walks the primary key backwards from `before_seq` and stops at
    `limit` matches: the filters' columns are written `+column` so SQLite never picks
    their index and then sorts every match (a common type has most of 100k events)."""
    where, params = wanted.where()
    if before_seq is not None:
        where.append("seq < ?")
        params.append(before_seq)
    if after_seq is not None:
        where.append("seq > ?")
        params.append(after_seq)
    sql = (f"SELECT seq, stream_id, type, payload, recorded_at, actor FROM events"
           f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq DESC LIMIT ?")
    return sql, [*params, limit]


def count_events(journal_path: Path, wanted: EventFilter, after_seq: int) -> int:
    """How many events matching `wanted` are newer than `after_seq`."""
    where, params = wanted.where()
    where.append("seq > ?")
    params.append(after_seq)
    with read_only(journal_path) as conn:
        if conn is None:
            return 0
        return int(conn.execute(f"SELECT count(*) FROM events WHERE {' AND '.join(where)}",
                                params).fetchone()[0])


def read_stream(journal_path: Path, stream_id: str, limit: int) -> tuple[list[EventLine], int]:
    """The newest `limit` events of one stream, oldest first, and how many older ones
    there are besides (a long job flushes a progress event about once a second)."""
    with read_only(journal_path) as conn:
        return ([], 0) if conn is None else stream_lines(conn, stream_id, limit)


def stream_lines(conn: sqlite3.Connection, stream_id: str,
                 limit: int) -> tuple[list[EventLine], int]:
    rows = conn.execute("SELECT seq, stream_id, type, payload, recorded_at, actor "
                        "FROM events WHERE stream_id = ? ORDER BY stream_version DESC "
                        "LIMIT ?", (stream_id, limit)).fetchall()
    total = conn.execute("SELECT count(*) FROM events WHERE stream_id = ?",
                         (stream_id,)).fetchone()[0]
    return [_line(row) for row in reversed(rows)], int(total) - len(rows)


def read_event(journal_path: Path, seq: int) -> EventDetail | None:
    with read_only(journal_path) as conn:
        row = None if conn is None else conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        return None
    return EventDetail(seq=row["seq"], stream_id=row["stream_id"],
                       stream_version=row["stream_version"], type=row["type"],
                       schema_version=row["schema_version"],
                       recorded_at=datetime.fromisoformat(row["recorded_at"]),
                       actor=_json(row["actor"]), payload=_json(row["payload"]),
                       prev_hash=row["prev_hash"], hash=row["hash"])


def _line(row: sqlite3.Row) -> EventLine:
    payload = _json(row["payload"])
    actor = _json(row["actor"])
    return EventLine(seq=row["seq"], stream_id=row["stream_id"], type=row["type"],
                     recorded_at=datetime.fromisoformat(row["recorded_at"]),
                     actor=str(actor.get("user", "?")) if isinstance(actor, dict) else "?",
                     summary=event_summary(row["type"], payload),
                     level=event_level(row["type"], payload))


def _json(text: str) -> Any:
    """A stored JSON column; an altered row that no longer parses shows as its text."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
