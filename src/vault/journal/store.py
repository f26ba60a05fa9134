"""The append-only, hash-chained event journal in one SQLite file.

Each row's `hash` is SHA-256 over the previous row's hash and the canonical JSON of the
row's own fields (docs/journal.md gives the exact definition), so editing, deleting,
reordering or inserting a row breaks the chain at that row. Appends are short
`BEGIN IMMEDIATE` transactions that also update the projections; WAL lets readers go on
reading while one writer appends.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from vault.errors import JournalError, StaleStreamVersion
from vault.foundation.actor import Actor, current_actor
from vault.foundation.paths import ensure_private_dir
from vault.foundation.sqlite_readonly import open_read_only, read_only_uri
from vault.journal.chain import (
    GENESIS_HASH,
    ChainVerification,
    chain_hash,
    format_time,
    verify_rows,
)
from vault.journal.events import (
    EVENT_TYPES,
    Event,
    RecordedEvent,
    canonical_json,
    parse_event,
    secret_keys,
)
from vault.journal.migrate import apply_migrations
from vault.journal.projections import PROJECTIONS, lagging, replay, save_checkpoint
from vault.journal.spool import JournalSpool, SpooledRow, replay_spool

_COLUMNS = (
    "seq, stream_id, stream_version, type, schema_version, payload, recorded_at, actor, "
    "prev_hash, hash"
)
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (:{_COLUMNS.replace(', ', ', :')})"


class Journal:
    """The event journal at `path`. One instance per thread (it holds one connection)."""

    def __init__(
        self,
        path: Path,
        *,
        actor: Actor | None = None,
        readonly: bool = False,
        busy_timeout_ms: int = 30_000,
        spool: JournalSpool | None = None,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.actor = actor or current_actor()
        self._actor_json = canonical_json(self.actor.model_dump(mode="json"))
        #: where appends go when the journal cannot be written (vault.journal.spool)
        self.spool = spool
        try:
            self._open(busy_timeout_ms)
        except JournalError as error:
            if spool is None or readonly or not _cannot_write(error):
                raise
            self._open_for_reading_only(error)
            return
        if spool is not None and not readonly:
            replay_spool(self, spool)

    def _open(self, busy_timeout_ms: int) -> None:
        with self._errors():
            self._conn = self._connect(busy_timeout_ms)
            try:
                if self.readonly:
                    self._check_initialized()
                else:
                    apply_migrations(self._conn)
                    self._catch_up_projections()
            except BaseException:
                self._conn.close()
                raise

    def _open_for_reading_only(self, error: JournalError) -> None:
        """The journal cannot be written (full or read-only disk): read what it holds as
        it is on disk (`immutable`: no -shm or -wal is created) and spool every append."""
        assert self.spool is not None
        self.spool.reason = self.spool.reason or error.message
        if not self.path.exists():
            raise error
        try:
            self._conn = open_read_only(self.path, immutable=True, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._check_initialized()
        except (sqlite3.Error, JournalError):
            raise error from None

    # --- connection -------------------------------------------------------------------

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.exists():
                raise JournalError(path=str(self.path), detail="no journal here")
            target, uri = read_only_uri(self.path), True
        else:
            _create_private(self.path)
            target, uri = str(self.path), False
        # isolation_level=None: the module never opens transactions behind our back.
        conn = sqlite3.connect(
            target, uri=uri, isolation_level=None, timeout=busy_timeout_ms / 1000
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if self.readonly:
            conn.execute("PRAGMA query_only = ON")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL rather than NORMAL: an fsync per append is cheap at our event rate
            # (progress flushes ~1/s), and a completed backup's event survives power loss.
            conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _check_initialized(self) -> None:
        found = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        if found is None:
            raise JournalError(path=str(self.path), detail="not an initialized vault journal")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Report SQLite and file failures (locked past the timeout, corrupt file, no
        permission) as JournalError, which the CLI knows how to show."""
        try:
            yield
        except (sqlite3.Error, OSError) as error:
            raise JournalError(path=str(self.path), detail=str(error)) from error

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise JournalError(path=str(self.path), detail="opened read-only")
        with self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (e.g. disk full); don't mask the cause.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------

    def append(
        self, stream_id: str, event: Event, *, expected_version: int | None = None
    ) -> RecordedEvent:
        """Append `event` to `stream_id`.

        With `expected_version`, the stream must be at exactly that version (0 for a new
        stream), else StaleStreamVersion is raised and nothing is written.
        """
        return self._append([(stream_id, event, expected_version)])[0]

    def append_many(
        self,
        items: Sequence[tuple[str, Event]],
        *,
        expected_versions: Mapping[str, int] | None = None,
    ) -> list[RecordedEvent]:
        """Append several events in one transaction: all are written, or none.

        `expected_versions` holds streams to the version they must be at before the first
        of these events is appended to them (StaleStreamVersion otherwise, nothing written).
        """
        expected = dict(expected_versions or {})
        return self._append([(stream_id, event, expected.pop(stream_id, None))
                             for stream_id, event in items])

    def _append(self, items: list[tuple[str, Event, int | None]],
                recorded_at: Sequence[str] | None = None) -> list[RecordedEvent]:
        if not items:
            return []
        # Serialise and screen everything before taking the write lock, to keep it short.
        prepared = [(s, e, expected, self._serialise(s, e)) for s, e, expected in items]
        if self.spool is not None and self.spool.active:
            return self._keep_in_spool(prepared, self.spool.reason or "")
        try:
            return self._append_rows(prepared, recorded_at)
        except StaleStreamVersion:
            raise
        except JournalError as error:
            if self.spool is None or not _cannot_write(error):
                raise
            return self._keep_in_spool(prepared, error.message)

    def _keep_in_spool(self, prepared: list[tuple[str, Event, int | None, Any]],
                       reason: str) -> list[RecordedEvent]:
        """Write the events to the spool (the journal is unwritable); the records returned
        have seq 0 and no hash: they get both when the spool is replayed."""
        assert self.spool is not None
        now = format_time(datetime.now(UTC))
        self.spool.keep([SpooledRow(stream_id, event.type_name(), event.schema_version,
                                    payload, now, reason)
                         for stream_id, event, _, payload in prepared], reason)
        row = {"seq": 0, "stream_version": 0, "recorded_at": now, "actor": self._actor_json,
               "prev_hash": "", "hash": ""}
        return [_to_record({**row, "stream_id": stream_id, "type": event.type_name(),
                            "schema_version": event.schema_version}, event, payload)
                for stream_id, event, _, payload in prepared]

    def append_spooled(self, rows: Sequence[SpooledRow],
                       replayed: Event) -> list[RecordedEvent]:
        """Append spooled rows with their own `recorded_at`, then `replayed`, in one
        transaction (never to the spool again: a failure leaves the spool file as it is)."""
        items: list[tuple[str, Event, int | None]] = [
            (row.stream_id, parse_event(row.type, row.schema_version, row.payload), None)
            for row in rows]
        items.append(("journal", replayed, None))
        prepared = [(s, e, expected, self._serialise(s, e)) for s, e, expected in items]
        now = format_time(datetime.now(UTC))
        return self._append_rows(prepared, [row.recorded_at for row in rows] + [now])

    def _append_rows(self, prepared: list[tuple[str, Event, int | None, Any]],
                     recorded_at: Sequence[str] | None) -> list[RecordedEvent]:
        recorded: list[RecordedEvent] = []
        with self._write_transaction() as conn:
            seq, prev_hash = self.head()
            self._catch_up_projections_locked(seq)
            for index, (stream_id, event, expected, payload) in enumerate(prepared):
                version = self._stream_version(stream_id)
                if expected is not None and expected != version:
                    raise StaleStreamVersion(
                        path=str(self.path), stream_id=stream_id, actual=version, expected=expected
                    )
                row = self._next_row(seq + 1, prev_hash, stream_id, version + 1, event, payload,
                                     recorded_at[index] if recorded_at else None)
                conn.execute(_INSERT, row)
                record = _to_record(row, event, payload)
                for projection in PROJECTIONS:
                    projection.apply(conn, record)
                seq, prev_hash = record.seq, record.hash
                recorded.append(record)
            for projection in PROJECTIONS:
                save_checkpoint(conn, projection.name, seq)
        return recorded

    def _serialise(self, stream_id: str, event: Event) -> dict[str, Any]:
        """The JSON payload, after checking it can be stored and will read back as stored."""
        if not stream_id:
            raise JournalError(path=str(self.path), detail="stream_id must not be empty")
        if EVENT_TYPES.get(event.type_name()) is not type(event):
            raise JournalError(path=str(self.path), detail=f"{event!r} is not a registered type")
        payload = event.model_dump(mode="json", warnings=False)
        if bad := secret_keys(payload):
            raise JournalError(path=str(self.path), detail=f"refused secret-looking keys {bad}")
        # model_construct() skips validation; an event that would not parse back must not
        # become a permanent, unreadable row.
        try:
            type(event).model_validate(payload)
            canonical_json(payload)
        except (ValidationError, ValueError) as error:
            raise JournalError(
                path=str(self.path), detail=f"{event.type_name()} is not valid: {error}"
            ) from error
        return payload

    def _stream_version(self, stream_id: str) -> int:
        row = self._conn.execute(
            "SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream_id = ?",
            (stream_id,),
        ).fetchone()
        return int(row[0])

    def _next_row(
        self, seq: int, prev_hash: str, stream_id: str, version: int, event: Event, payload: Any,
        recorded_at: str | None = None,
    ) -> dict[str, Any]:
        """The next row's columns; its hash covers exactly what is stored."""
        hashed = {
            "seq": seq,
            "stream_id": stream_id,
            "stream_version": version,
            "type": event.type_name(),
            "schema_version": event.schema_version,
            "payload": payload,
            "recorded_at": recorded_at or format_time(datetime.now(UTC)),
            "actor": json.loads(self._actor_json),
        }
        return {
            **hashed,
            "payload": canonical_json(payload),
            "actor": self._actor_json,
            "prev_hash": prev_hash,
            "hash": chain_hash(prev_hash, hashed),
        }

    # --- reading ----------------------------------------------------------------------

    def iter_events(
        self,
        *,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        stream_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> Iterator[RecordedEvent]:
        """Like `read()`, but lazily: the read holds one consistent WAL snapshot throughout.

        `since` and `until` are inclusive; `actor` matches the OS user name.
        Raises UnknownEventType on an event this vault cannot parse.
        """
        where, params = ["seq > ?"], list[Any]([after_seq])
        if types is not None:
            where.append(f"type IN ({', '.join('?' for _ in types)})")
            params.extend(types)
        for clause, value in (
            ("stream_id = ?", stream_id),
            ("recorded_at >= ?", format_time(since) if since else None),
            ("recorded_at <= ?", format_time(until) if until else None),
            ("json_extract(actor, '$.user') = ?", actor),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq"
        sql += " DESC" if descending else ""
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        yield from self._iter_rows(sql, params)

    def _iter_rows(self, sql: str, params: Sequence[Any]) -> Iterator[RecordedEvent]:
        with self._errors():
            cursor = self._conn.execute(sql, params)
            try:
                for row in cursor:
                    payload = json.loads(row["payload"])
                    yield _to_record(
                        row, parse_event(row["type"], row["schema_version"], payload), payload
                    )
            finally:
                cursor.close()

    def read(
        self,
        *,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        stream_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[RecordedEvent]:
        """The events matching every given filter, in `seq` order (newest first if descending)."""
        return list(
            self.iter_events(
                after_seq=after_seq,
                types=types,
                stream_id=stream_id,
                since=since,
                until=until,
                actor=actor,
                limit=limit,
                descending=descending,
            )
        )

    def stream(self, stream_id: str) -> list[RecordedEvent]:
        """One stream's events, oldest first (stream_version order equals seq order)."""
        return self.read(stream_id=stream_id)

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest event, or (0, GENESIS_HASH) for an empty journal.

        Export or anchor it elsewhere: the chain alone cannot reveal a truncated tail.
        """
        with self._errors():
            row = self._conn.execute(
                "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))

    def head_seq(self) -> int:
        return self.head()[0]

    # --- integrity --------------------------------------------------------------------

    def verify(self) -> ChainVerification:
        """Walk the whole chain on the raw rows (no event models), stopping at the first break."""
        with self._errors():
            cursor = self._conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq")
            try:
                return verify_rows(cursor)
            finally:
                cursor.close()

    # --- projections ------------------------------------------------------------------

    def rebuild_projections(self) -> int:
        """Drop and recreate every projection from the events in one transaction.

        Returns the number of events replayed. Appends nothing: the caller journals
        ProjectionsRebuilt afterwards if it wants the rebuild on record.
        """
        with self._write_transaction() as conn:
            return replay(conn, PROJECTIONS, self._records_after(0), after_seq=0)

    def _catch_up_projections(self) -> None:
        """Bring projections that are behind (new, or reset by a migration) up to the head."""
        if not lagging(self._conn, self.head_seq()):
            return  # the usual case, decided without taking the write lock
        with self._write_transaction():
            self._catch_up_projections_locked(self.head_seq())

    def _catch_up_projections_locked(self, head: int) -> None:
        for projection, position in lagging(self._conn, head):
            replay(self._conn, [projection], self._records_after(position), position)

    def _records_after(self, seq: int) -> Iterator[RecordedEvent]:
        return self._iter_rows(f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq", [seq])


def _to_record(row: sqlite3.Row | dict[str, Any], event: Event, payload: Any) -> RecordedEvent:
    return RecordedEvent(
        seq=row["seq"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        type=row["type"],
        schema_version=row["schema_version"],
        payload=payload,
        event=event,
        recorded_at=datetime.fromisoformat(row["recorded_at"]),
        actor=Actor.model_validate_json(row["actor"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _cannot_write(error: JournalError) -> bool:
    """Whether `error` is the journal's file or SQLite refusing to write (disk full, I/O
    error, read-only file system, no permission): what the spool is for."""
    return isinstance(error.__cause__, sqlite3.OperationalError | OSError)


def _create_private(path: Path) -> None:
    """Create the journal file 0600 in a 0700 directory; SQLite gives -wal/-shm the same mode."""
    if not path.parent.exists():
        ensure_private_dir(path.parent)
    # An existing journal (or a concurrent opener's new one) keeps its mode.
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
