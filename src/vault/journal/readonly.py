"""A read-only connection to the journal that also works when its disk is full.

`mode=ro` still needs SQLite's shared-memory file (`-shm`) for a WAL database, and
creating or growing it fails on a full or read-only file system ("disk I/O error"). Then
the file is read as it is on disk (`immutable`): what the last checkpoint holds, which
after every vault command is everything, as the last connection to close checkpoints.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vault.foundation.sqlite_readonly import open_read_only


def connect_read_only(journal_path: Path, *, timeout: float = 30) -> sqlite3.Connection:
    """A `query_only` connection with `sqlite3.Row` rows; raises what sqlite3 raises."""
    conn = open_read_only(journal_path, timeout=timeout)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        conn.close()
        conn = open_read_only(journal_path, immutable=True)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA query_only = ON")
    return conn
