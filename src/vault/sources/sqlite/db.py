"""SQLite plumbing shared by capture and restore: errors, busy retries, connections, facts.

A database another process holds locked is not an error at first: SQLite's own busy
handler waits a little inside each attempt, and `with_busy_retry` tries again after
growing pauses until its time budget is spent, then says so in one line.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vault.errors import OperationFailed

T = TypeVar("T")

_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_NOT_A_DATABASE_CODES = (sqlite3.SQLITE_NOTADB,)


# --- errors -----------------------------------------------------------------------------


class SqliteError(OperationFailed):
    """database {path}: {detail}"""


class SqliteLocked(SqliteError):
    """database {path} is locked by another process; retried {retries} times over {seconds} s"""


class SqliteNotFound(SqliteError):
    """database {path} does not exist"""


class SqliteNotADatabase(SqliteError):
    """{path} is not a SQLite database"""


class SqliteTargetExists(SqliteError):
    """{path} already exists; restore to another target or use mode "replace" to overwrite it"""


class SqliteTableNotFound(SqliteError):
    """the snapshot has no table or view {table!r} (it has: {known})"""


class SqliteInUse(SqliteError):
    """database {path} is open in another connection; stop the application before replacing it"""


class SqliteNoTarget(SqliteError):
    """database {path} does not exist; mode {mode} restores rows into an existing database (mode new-target makes a new file)"""  # noqa: E501


class SqliteConflicts(SqliteError):
    """{count} row(s) differ between the snapshot and {path} ({where}); nothing was restored: choose --on-conflict skip, overwrite or rename"""  # noqa: E501


class SqliteRenameRefused(SqliteError):
    """cannot restore rows of {path} with --on-conflict rename: {detail}; nothing was restored"""


class SqliteNewIdsRefused(SqliteError):
    """cannot restore rows of {path} as a new copy with new ids: {detail}; nothing was restored"""


class SqliteTableMismatch(SqliteError):
    """table {table!r} of {path} cannot be restored row by row: {detail}; restore it whole with mode replace"""  # noqa: E501


class SqliteConstraint(SqliteError):
    """restoring rows into {path} broke a constraint ({detail}); nothing was restored"""


class SqliteRestoreFailed(SqliteError):
    """restored database {path} failed PRAGMA integrity_check: {detail}; nothing was replaced"""


# --- retries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BusyPolicy:
    """Retry a locked database `retries` times, with pauses that double and add up to
    `seconds`; each attempt also lets SQLite's busy handler wait `attempt_timeout`."""

    retries: int = 5
    seconds: float = 10.0

    @property
    def attempt_timeout(self) -> float:
        delays = backoff_delays(self.retries, self.seconds)
        return min(delays[0], 1.0) if delays else min(self.seconds, 1.0)


def backoff_delays(retries: int, total: float) -> list[float]:
    """Pauses before each retry: doubling (1, 2, 4, ...) and scaled to add up to `total`."""
    if retries <= 0:
        return []
    unit = total / (2**retries - 1)
    return [unit * 2**index for index in range(retries)]


def is_busy(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorcode", None) in _BUSY_CODES or (
        "database is locked" in str(error) or "database table is locked" in str(error)
    )


def with_busy_retry(attempt: Callable[[], T], path: Path | str, policy: BusyPolicy,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """`attempt()`, tried again after a pause while it fails because the database is busy."""
    started = time.monotonic()
    delays = backoff_delays(policy.retries, policy.seconds)
    for delay in [*delays, None]:
        try:
            return attempt()
        except sqlite3.OperationalError as error:
            if not is_busy(error):
                raise
            if delay is None:
                seconds = f"{time.monotonic() - started:.1f}"
                raise SqliteLocked(path=str(path), retries=policy.retries,
                                   seconds=seconds) from error
        sleep(delay)
    raise AssertionError("unreachable")  # the last pass returns or raises


# --- connections ------------------------------------------------------------------------


def file_uri(path: Path, **query: str) -> str:
    """A `file:` URI for `path` (percent-encoded, so '?' or '#' in a name stay in the name)."""
    params = "&".join(f"{key}={value}" for key, value in query.items())
    return path.as_uri() + (f"?{params}" if params else "")


def check_is_file(path: Path) -> None:
    if not path.exists():
        raise SqliteNotFound(path=str(path))
    if not path.is_file():
        raise SqliteNotADatabase(path=str(path))


def connect_readonly(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection (vault never writes to the database it backs up) in
    autocommit mode, so `BEGIN` opens the read transaction exactly where we say."""
    check_is_file(path)
    return sqlite3.connect(file_uri(path, mode="ro"), uri=True, timeout=timeout,
                           isolation_level=None, check_same_thread=False)


def connect_writable(path: Path, timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(file_uri(path, mode="rw"), uri=True, timeout=timeout,
                           isolation_level=None, check_same_thread=False)


def translate_open_error(error: sqlite3.DatabaseError, path: Path) -> Exception:
    """The clear error for what SQLite reports when a file is not a usable database."""
    code = getattr(error, "sqlite_errorcode", None)
    if code in _NOT_A_DATABASE_CODES or "file is not a database" in str(error):
        return SqliteNotADatabase(path=str(path))
    return SqliteError(path=str(path), detail=str(error))


# --- facts --------------------------------------------------------------------------------


def quote(name: str) -> str:
    """An SQL identifier, quoted (table names come from the database, not from us)."""
    return '"' + name.replace('"', '""') + '"'


def user_tables(conn: sqlite3.Connection, schema: str = "main") -> list[str]:
    rows = conn.execute(
        f"SELECT name FROM {quote(schema)}.sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").fetchall()
    return [str(name) for (name,) in rows]


def table_row_counts(conn: sqlite3.Connection, schema: str = "main") -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in user_tables(conn, schema):
        try:
            (count,) = conn.execute(
                f"SELECT count(*) FROM {quote(schema)}.{quote(table)}").fetchone()
        except sqlite3.OperationalError:
            continue  # a virtual table whose module this SQLite lacks (fts, rtree builds)
        counts[table] = int(count)
    return counts


def pragma(conn: sqlite3.Connection, name: str) -> Any:
    row = conn.execute(f"PRAGMA {name}").fetchone()
    return row[0] if row else None


def integrity_problems(conn: sqlite3.Connection, schema: str = "main") -> list[str]:
    rows = conn.execute(f"PRAGMA {quote(schema)}.integrity_check").fetchall()
    messages = [str(message) for (message,) in rows]
    return [] if messages == ["ok"] else messages


def wal_size(path: Path) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0
