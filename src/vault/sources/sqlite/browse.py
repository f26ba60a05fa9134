"""Browsing a stored SQLite snapshot: its tables with their row counts (from the meta),
and the rows of the stored database file, written once to a scratch directory and
queried there read-only."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from vault.errors import UsageError
from vault.foundation.sqlite_readonly import open_read_only
from vault.sources import browse
from vault.sources.base import StoredItems
from vault.sources.sqlite.db import SqliteTableNotFound, quote, user_tables
from vault.sources.sqlite.entities import key_column
from vault.sources.sqlite.stored import stored_item_path, write_item

__all__ = ["SqliteBrowser", "SqliteRecords"]


class SqliteBrowser:
    def contents(self, stored: StoredItems) -> browse.SnapshotContents:
        tables = [browse.StoredTable(name, int(rows))
                  for name, rows in sorted((stored.meta.get("tables") or {}).items())]
        return browse.contents_from_meta(stored.meta, stored.paths(), tables)

    def reader(self, stored: StoredItems, scratch_dir: Path) -> SqliteRecords:
        return SqliteRecords(stored, scratch_dir)


def _key_column(conn: sqlite3.Connection, table: str) -> str:
    """What names a row of `table` (its one-column primary key, or its rowid)."""
    tables = user_tables(conn)
    if table not in tables:
        raise SqliteTableNotFound(table=table, known=", ".join(tables) or "none")
    try:
        return key_column(conn, table)
    except ValueError as error:  # a key of several columns names no one row
        raise UsageError(f"the rows of table {table!r} are not listed one by one: "
                         f"{error}") from None


class SqliteRecords:
    """Rows of the snapshot's database file. The file is written on the first read, into
    a private directory under `scratch_dir` that `close()` removes."""

    def __init__(self, stored: StoredItems, scratch_dir: Path) -> None:
        self.stored = stored
        self.scratch_dir = scratch_dir
        self._workdir: Path | None = None

    def _database(self) -> Path:
        if self._workdir is None:
            self.scratch_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            workdir = Path(tempfile.mkdtemp(prefix=".vault-browse-", dir=self.scratch_dir))
            try:
                write_item(self.stored, stored_item_path(self.stored), workdir / "copy.db")
            except BaseException:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            self._workdir = workdir
        return self._workdir / "copy.db"

    def records(self, table: str, match: browse.Match | None = None, *,
                limit: int = browse.PAGE, offset: int = 0) -> browse.RecordPage:
        conn = open_read_only(self._database())
        try:
            key = _key_column(conn, table)
            where, params = "", list[Any]()
            if match is not None:
                where, params = f" WHERE {quote(match[0])} = ?", [match[1]]
            cursor = conn.execute(f"SELECT {key}, * FROM {quote(table)}{where} ORDER BY {key}",
                                  params)
            key_name = key.strip('"').replace('""', '"')
            others = [(i, column[0]) for i, column in enumerate(cursor.description)
                      if i > 0 and column[0] != key_name]
            found = browse.PageCollector(limit, offset)
            for row in cursor:
                found.add(row[0], ((name, row[i]) for i, name in others))
            return found.page
        finally:
            conn.close()

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


BROWSER = SqliteBrowser()
