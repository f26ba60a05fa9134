"""Writing a SQLite file atomically: made beside its target, synced, checked with `PRAGMA
integrity_check` and renamed over it, so the target is the old database or the new one."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vault.sources.sqlite.db import (
    SqliteRestoreFailed,
    file_uri,
    integrity_problems,
    table_row_counts,
)

#: the files SQLite keeps beside a database in WAL mode
SIDE_FILES = ("-wal", "-shm")


@contextlib.contextmanager
def file_beside(target: Path) -> Iterator[Path]:
    """A new private file in the target's directory (so a rename onto the target is
    atomic); removed with SQLite's side files unless it was renamed into place."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".vault-restore",
                                dir=target.parent)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        for leftover in (path, *(Path(f"{path}{s}") for s in (*SIDE_FILES, "-journal"))):
            leftover.unlink(missing_ok=True)


def checked_row_counts(path: Path, reported_as: Path) -> dict[str, int]:
    """Rows per table of a restored file that passes `PRAGMA integrity_check`. Opened
    read-write so that closing it removes the -wal and -shm files it makes."""
    try:
        conn = sqlite3.connect(file_uri(path), uri=True, isolation_level=None)
        try:
            problems = integrity_problems(conn)
            counts = {} if problems else table_row_counts(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        problems = [str(error)]
    if problems:
        raise SqliteRestoreFailed(path=str(reported_as), detail="; ".join(problems[:3]))
    return counts


def os_detail(error: OSError) -> str:
    return f"{error.strerror or error}: {error.filename}" if error.filename else str(error)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fsync_file(path)
