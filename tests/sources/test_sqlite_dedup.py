"""How much a second capture of a ~200 MB SQLite database adds to the repository.

The engine cuts each item into ~1 MiB content-defined chunks, so any chunk holding one
changed page is stored anew. Rows changed at random places touch nearly every chunk
whatever the copy does (measured and printed, not asserted); an application's usual churn
-- recent rows edited, new rows appended -- touches few pages, and that is asserted.
See docs/performance.md for the figures and the reasoning.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from vault.sources.base import CaptureContext, MemoryStoredItems, capture_to_memory
from vault.sources.sqlite.source import CopyMethod, SqliteSource

NewBytes = Callable[[MemoryStoredItems, MemoryStoredItems], int]  # the conftest fixture
MIB = 1 << 20
ROW_BYTES = 214  # a message row of ~200 bytes plus its index entry, as stored


def make_chat_database(path: Path, size: int) -> int:
    """A chat application's messages table of about `size` bytes; returns the row count."""
    rows = size // ROW_BYTES
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.executescript("""
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL, created_at REAL NOT NULL,
            author TEXT NOT NULL, body TEXT NOT NULL, edited INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX messages_by_session ON messages (session_id, created_at);
    """)
    conn.execute("""
        WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)
        INSERT INTO messages (id, session_id, created_at, author, body)
        SELECT x, x / 40, 1.7e9 + x * 3.0, 'user' || (x % 97), hex(randomblob(80)) FROM n
    """, (rows,))
    conn.close()
    return rows


def app_churn(path: Path, rows: int) -> int:
    """What an application does between two backups: edit a run of recent messages
    (0.5% of rows, new bodies of other lengths) and append 0.5% new ones."""
    count = rows // 200
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("UPDATE messages SET body = hex(randomblob(60 + abs(random()) % 40)),"
                 " edited = 1 WHERE id > ? AND id <= ?", (rows - 4 * count, rows - 3 * count))
    conn.execute("""
        WITH RECURSIVE n(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM n WHERE x < ?)
        INSERT INTO messages (id, session_id, created_at, author, body)
        SELECT x, x / 40, 1.7e9 + x * 3.0, 'user' || (x % 97), hex(randomblob(80)) FROM n
    """, (rows + 1, rows + count))
    conn.execute("COMMIT")
    conn.close()
    return rows + count


def scattered_churn(path: Path, rows: int) -> None:
    """1% of rows edited at random places, each body keeping its length."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE messages SET body = hex(randomblob(80)), edited = 1 WHERE id IN"
                 " (SELECT id FROM messages ORDER BY random() LIMIT ?)", (rows // 100,))
    conn.close()


def changed_pages(before: MemoryStoredItems, after: MemoryStoredItems, page: int = 4096) -> int:
    """Pages of the copy that differ or are new: what the change itself rewrote."""
    old, new = before.data["chat.db"], after.data["chat.db"]
    return sum(old[at:at + page] != new[at:at + page] for at in range(0, len(new), page))


def capture(db: Path, method: CopyMethod, scratch: Path) -> MemoryStoredItems:
    source = SqliteSource("chat", db, copy=method)
    return capture_to_memory(source, CaptureContext(scratch_dir=str(scratch)))


@pytest.mark.slow
def test_a_small_change_to_a_large_database_stores_little(
        tmp_path: Path, new_bytes: NewBytes) -> None:
    db, scratch = tmp_path / "chat.db", tmp_path / "scratch"
    scratch.mkdir()
    rows = make_chat_database(db, 200 * MIB)
    methods: tuple[CopyMethod, ...] = ("backup", "vacuum")
    first = {method: capture(db, method, scratch) for method in methods}

    rows = app_churn(db, rows)
    second = {method: capture(db, method, scratch) for method in methods}
    app = {m: (new_bytes(first[m], second[m]), second[m].size("chat.db"),
               changed_pages(first[m], second[m])) for m in methods}
    del first

    scattered_churn(db, rows)
    third = {method: capture(db, method, scratch) for method in methods}
    scatter = {m: (new_bytes(second[m], third[m]), third[m].size("chat.db"),
                   changed_pages(second[m], third[m])) for m in methods}

    print(f"\nSQLite {rows} rows; new data of the second capture (new / copy size):")
    for method in methods:
        for label, figures in (("app churn 0.5% edited + 0.5% added", app),
                               ("1% edited at random", scatter)):
            added, size, pages = figures[method]
            print(f"  {method:6} {label:36} {added / MIB:7.1f} MiB / {size / MIB:6.1f} MiB"
                  f" = {100 * added / size:5.1f}%   ({pages} of {size // 4096} pages changed)")
    added, size, _ = app["backup"]
    assert added < size / 10, f"{added} new bytes of {size}"
    assert third["backup"].meta["tables"] == {"messages": rows}
