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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from vault.errors import JournalError, UsageError
from vault.journal.chain import format_time
from vault.units import human_bytes

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
        conn = sqlite3.connect(journal_path.resolve().as_uri() + "?mode=ro", uri=True,
                               timeout=30)
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


# --- the filter bar ---------------------------------------------------------------------


def parse_filter_text(text: str, keys: tuple[str, ...]) -> tuple[dict[str, list[str]], list[str]]:
    """`key:value` tokens (for the given keys) and the free words of a filter bar's text.
    A `word:` naming no known key is refused rather than searched for: it is most likely a
    misspelt key, and silently matching nothing would hide that."""
    tokens: dict[str, list[str]] = {key: [] for key in keys}
    words: list[str] = []
    for token in text.split():
        key, colon, value = token.partition(":")
        if not colon or not key.isalpha():
            words.append(token)
            continue
        if key.lower() not in tokens:
            known = ", ".join(f"{k}:" for k in keys)
            raise UsageError(f"unknown filter {key}: (use {known} or plain words)")
        if not value:
            raise UsageError(f"{key}: needs a value")
        tokens[key.lower()].append(value)
    return tokens, words


def parse_moment(value: str, key: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time; without an offset it is local time (as the tables show
    it). A bare date ends at midnight when it closes a range (`until:` takes the day in)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{key}:{value}: expected a date such as 2026-11-20 or "
                         "2026-11-20T14:00") from exc
    if end_of_day and len(value) == 10:
        moment += timedelta(days=1, microseconds=-1)
    return moment if moment.tzinfo else moment.astimezone()


# --- one line per event -----------------------------------------------------------------

_ERROR_TYPES = {"JobInterrupted", "SnapshotCorrupted"}
_WARN_TYPES = {"StorageLow", "ScheduleRunMissed", "JobCancelled", "ScheduleRunSkipped"}
#: payload keys never shown in a summary line: free text from hooks or commands, and the
#: queued command's whole dict (the journal refuses secret keys, but not secret values)
_HIDDEN_KEYS = {"command", "output", "options", "definition", "summary"}


def event_level(type_name: str, payload: Any) -> str:
    """"error" for failures and damage, "warn" for partial outcomes, "" otherwise."""
    p = payload if isinstance(payload, dict) else {}
    if type_name.endswith("Failed") or type_name in _ERROR_TYPES:
        return "error"
    if type_name in ("JournalVerified", "VerifyCompleted") and p.get("ok") is False:
        return "error"
    status = p.get("status")
    if status == "failed":
        return "error"
    if status == "partial" or type_name in _WARN_TYPES or p.get("errors"):
        return "warn"
    return ""


def event_summary(type_name: str, payload: Any) -> str:
    """A one-line, secret-free description of an event's payload for a table row."""
    if not isinstance(payload, dict):
        return _clip(str(payload))
    p = _Fields(payload)
    if type_name.endswith("Progressed"):
        return _progress(p)
    if type_name.endswith("Failed") and "message" in p:
        return _clip(f"{p['error_kind']}: {p['message']}")
    describe = _SUMMARIES.get(type_name)
    if describe is not None:
        return _clip(describe(p))
    return _clip(", ".join(f"{k}={v}" for k, v in sorted(payload.items())
                           if k not in _HIDDEN_KEYS and isinstance(v, str | int | float)))


class _Fields(dict[str, Any]):
    """A payload whose missing keys read as "?" (an older or newer shape of the event)."""

    def __missing__(self, key: str) -> str:
        return "?"

    def id(self, key: str) -> str:
        return str(self[key])[:8]

    def size(self, key: str) -> str:
        value = self[key]
        return human_bytes(value) if isinstance(value, int) else "?"

    def count(self, key: str) -> int:
        value = self[key]
        return len(value) if isinstance(value, list | dict) else 0


def _progress(p: _Fields) -> str:
    total = f" of {p.size('bytes_total')}" if p["bytes_total"] not in (None, "?") else ""
    items = f", {p['items_done']} item(s)" if p["items_done"] != "?" else ""
    rate = p["rate_bps"]
    speed = f", {human_bytes(int(rate))}/s" if isinstance(rate, int | float) and rate else ""
    return f"{p['phase']}: {p.size('bytes_done')}{total}{items}{speed}"


def _problems(p: _Fields, key: str = "errors") -> str:
    n = p.count(key)
    return f", {n} problem(s)" if n else ""


def _backup_requested(p: _Fields) -> str:
    what = p["source"] if p["source"] not in (None, "?") else ", ".join(p["paths"] or [])
    tags = f" tags {','.join(p['tags'])}" if p["tags"] and p["tags"] != "?" else ""
    return f"{what} ({p['source_type']}){tags}"


def _journal_verified(p: _Fields) -> str:
    if p["ok"] is True:
        return f"hash chain intact, {p['events_checked']} events"
    return f"hash chain broken at seq {p['first_bad_seq']}: {p['reason']}"


_SUMMARIES: dict[str, Any] = {
    "RepositoryInitialized": lambda p: f"repository {p['repository']}",
    "KeyAdded": lambda p: f"key {p.id('key_id')} added"
                          + (f" ({p['label']})" if p["label"] else ""),
    "KeyRemoved": lambda p: f"key {p.id('key_id')} removed",
    "KeyChanged": lambda p: f"key {p.id('old_key_id')} replaced by {p.id('new_key_id')}",
    "StaleLockRemoved": lambda p: f"stale lock of {p['holder']} removed",
    "StorageLow": lambda p: f"{p.size('used_bytes')} of {p.size('quota_bytes')} used",
    "StorageRecovered": lambda p: f"{p.size('used_bytes')} of {p.size('quota_bytes')} used",
    "BackupRequested": _backup_requested,
    "BackupStarted": lambda p: "started" + (f", parent {p.id('parent')}" if p["parent"]
                                            else ", full"),
    "BackupCompleted": lambda p: f"snapshot {p.id('snapshot_id')} {p['status']}: "
                                 f"{p.size('bytes_raw')}, {p.size('bytes_new')} new"
                                 + _problems(p),
    "BackupGroupCompleted": lambda p: f"group {p['group'] or p['group_id']} {p['status']}: "
                                      f"{p.count('sources')} source(s)",
    "RestoreRequested": lambda p: f"{p['snapshot_ref']} -> {p['target']}",
    "RestoreStarted": lambda p: f"snapshot {p.id('snapshot_id')}",
    "RestoreReported": lambda p: f"{p['restored']} restored, {p['skipped']} skipped, "
                                 f"{p['failed']} failed, {p['conflicts']} conflict(s)",
    "RestoreCompleted": lambda p: f"{p['files_restored']} file(s) restored to {p['target']}, "
                                  f"{p.size('bytes_written')}" + _problems(p),
    "RestoreUndoable": lambda p: f"undo snapshot {p.id('undo_snapshot_id')} kept",
    "RestoreUndone": lambda p: f"undone: {p['restored']} restored, {p['removed']} removed",
    "RestoreHookRan": lambda p: f"{p['phase']} hook exited {p['exit_code']}"
                                + (" (timed out)" if p["timed_out"] is True else ""),
    "VerifyRequested": lambda p: "read data" if p["read_data"] is True else "structure",
    "VerifyStarted": lambda p: "started",
    "VerifyCompleted": lambda p: f"{'ok' if p['ok'] is True else 'DAMAGED'}: "
                                 f"{p['snapshots_checked']} snapshot(s), "
                                 f"{p['packs_checked']} pack(s) read" + _problems(p, "problems"),
    "JobQueued": lambda p: f"attempt {p['attempt']}: {p['summary']}",
    "JobClaimed": lambda p: f"worker {p['host']}:{p['pid']}, attempt {p['attempt']}",
    "JobInterrupted": lambda p: f"{p['reason']}"
                                + (", will retry" if p["will_retry"] is True else ""),
    "JobCancelled": lambda p: "cancelled",
    "SnapshotCorrupted": lambda p: f"snapshot {p.id('snapshot_id')}: {p['reason']} "
                                   f"({p.count('paths')} path(s))",
    "SnapshotForgotten": lambda p: f"snapshot {p.id('snapshot_id')}: {p['reason']}",
    "SnapshotExported": lambda p: f"snapshot {p.id('snapshot_id')} to {p['file']}",
    "SnapshotImported": lambda p: f"{p['file']} as snapshot {p.id('snapshot_id')}",
    "CommandFailed": lambda p: f"{p['command']}: {p['error_kind']}: {p['message']}",
    "JournalVerified": _journal_verified,
    "ProjectionsRebuilt": lambda p: f"from {p['events_replayed']} events",
    "NotificationSent": lambda p: f"{p['channel']} to {p['target']}: {p['title']}",
    "NotificationFailed": lambda p: f"{p['channel']} to {p['target']}: {p['error']}",
    "ScheduleRunQueued": lambda p: f"{p['name']}: {p.count('job_ids')} job(s) for {p['due']}",
    "ScheduleRunMissed": lambda p: f"{p['name']}: {p['missed_count']} run(s) missed",
    "ScheduleRunCompleted": lambda p: f"{p['name']}: {p['status']}",
    "ScheduleRetentionApplied": lambda p: f"{p['name']}: {p.count('removed')} removed, "
                                          f"{p['kept']} kept",
    "PruneCompleted": lambda p: f"{p.size('bytes_freed')} freed, "
                                f"{p['packs_deleted']} pack(s) deleted",
}


def _clip(text: str, width: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"
