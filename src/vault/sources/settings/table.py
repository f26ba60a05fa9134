"""A settings table (one row per key) in a SQLite database: read it, and re-import into it.

Values keep their SQLite storage class (INTEGER, REAL, TEXT, BLOB, NULL). A re-import runs
in one `BEGIN IMMEDIATE` transaction: the live rows are read, merged, and only the rows
that change are inserted, updated or deleted, so other columns of unchanged rows (an
`updated_at`, say) stay as they were. The rows as they were are first copied, in the same
transaction, into `<database>.vault-undo-<UTC time>` (a SQLite file holding that table).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.foundation.sqlite_readonly import open_read_only
from vault.sources.settings.errors import SettingsTableError, SettingsUnreadable
from vault.sources.settings.files import NEW_FILE_MODE, undo_path
from vault.sources.settings.merge import ABSENT, MergeResult, same_value

__all__ = ["SettingsTable", "TableImport"]

BUSY_TIMEOUT_S = 10.0


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableImport:
    result: MergeResult
    undo: str | None


@dataclass(frozen=True)
class SettingsTable:
    database: str
    table: str = "settings"
    key_column: str = "key"
    value_column: str = "value"

    def _select(self) -> str:
        return (f"SELECT {_quote(self.key_column)}, {_quote(self.value_column)} "
                f"FROM {_quote(self.table)}")

    def _error(self, exc: sqlite3.Error) -> SettingsTableError:
        return SettingsTableError(str(exc), table=self.table, database=self.database)

    def read(self) -> dict[Any, Any]:
        """Every key and its value (read-only; a missing database is an error)."""
        if not os.path.exists(self.database):
            raise SettingsUnreadable("no such file", path=self.database)
        try:
            connection = open_read_only(self.database, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise SettingsUnreadable(str(exc), path=self.database) from None
        try:
            return self._rows(connection)
        finally:
            connection.close()

    def _rows(self, connection: sqlite3.Connection) -> dict[Any, Any]:
        try:
            rows = connection.execute(self._select()).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        settings: dict[Any, Any] = {}
        for key, value in rows:
            if key in settings:
                raise SettingsTableError(f"the key column {self.key_column!r} holds a key twice",
                                         table=self.table, database=self.database)
            settings[key] = value
        return settings

    def size_estimate(self) -> int | None:
        try:
            connection = open_read_only(self.database)
            try:
                sql = (f"SELECT sum(length({_quote(self.key_column)}) + "
                       f"coalesce(length({_quote(self.value_column)}), 0)) "
                       f"FROM {_quote(self.table)}")
                found = connection.execute(sql).fetchone()[0]
            finally:
                connection.close()
        except sqlite3.Error:
            return None
        return int(found or 0)

    def preview(self, merge: Callable[[Any], MergeResult]) -> TableImport:
        """What `reimport` would do, the table only read (a dry run)."""
        if not os.path.exists(self.database):
            return TableImport(self._merged(merge, ABSENT), None)
        try:
            connection = open_read_only(self.database, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise SettingsUnreadable(str(exc), path=self.database) from None
        try:
            live = self._rows(connection) if self._exists(connection) else ABSENT
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            connection.close()
        return TableImport(self._merged(merge, live), None)

    def _exists(self, connection: sqlite3.Connection) -> bool:
        return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                  "name = ?", (self.table,)).fetchone() is not None

    def _merged(self, merge: Callable[[Any], MergeResult], live: Any) -> MergeResult:
        result = merge(live)
        if not isinstance(result.settings, dict):
            raise SettingsTableError("the stored settings are not a key/value table",
                                     table=self.table, database=self.database)
        return result

    def reimport(self, merge: Callable[[Any], MergeResult]) -> TableImport:
        """Merge the stored settings (`merge(live)`) into the table, creating database and
        table if they do not exist."""
        created = not os.path.exists(self.database)
        try:
            connection = sqlite3.connect(self.database, isolation_level=None,
                                         timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise SettingsUnreadable(str(exc), path=self.database) from None
        if created:
            os.chmod(self.database, NEW_FILE_MODE)
        undo = undo_path(Path(self.database))
        try:
            return self._reimport(connection, merge, undo)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            connection.close()
            if undo.exists() and undo.stat().st_size == 0:
                undo.unlink()  # ATTACH made it, nothing needed it

    def _reimport(self, connection: sqlite3.Connection, merge: Callable[[Any], MergeResult],
                  undo: Path) -> TableImport:
        connection.execute("ATTACH DATABASE ? AS vault_undo", (str(undo),))
        connection.execute("BEGIN IMMEDIATE")
        try:
            exists = self._exists(connection)
            live = self._rows(connection) if exists else ABSENT
            result = self._merged(merge, live)
            if result.report.unchanged:
                connection.execute("ROLLBACK")
                return TableImport(result, None)
            if exists:
                connection.execute(f"CREATE TABLE vault_undo.{_quote(self.table)} AS "
                                   f"SELECT * FROM main.{_quote(self.table)}")
            else:
                connection.execute(f"CREATE TABLE main.{_quote(self.table)} ("
                                   f"{_quote(self.key_column)} TEXT PRIMARY KEY, "
                                   f"{_quote(self.value_column)})")
            self._apply(connection, live if exists else {}, result.settings)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return TableImport(result, str(undo) if exists else None)

    def _apply(self, connection: sqlite3.Connection, live: dict[Any, Any],
               new: dict[Any, Any]) -> None:
        table, key, value = _quote(self.table), _quote(self.key_column), _quote(self.value_column)
        for name in live:
            if name not in new:
                connection.execute(f"DELETE FROM main.{table} WHERE {key} = ?", (name,))
        for name, wanted in new.items():
            if name not in live:
                connection.execute(f"INSERT INTO main.{table} ({key}, {value}) VALUES (?, ?)",
                                   (name, wanted))
            elif not same_value(live[name], wanted):
                connection.execute(f"UPDATE main.{table} SET {value} = ? WHERE {key} = ?",
                                   (wanted, name))
