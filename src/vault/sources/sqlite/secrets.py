"""Secrets inside a SQLite database: the settings source's secret globs applied to named
tables, in the stored copy only (the application's database is never written).

A table is named with `[[sources.secret_tables]]`. With `key_column` and `value_column`
it is a key/value table: the value of every row whose key matches a secret glob is a
secret. Without them, every value of a column whose name matches a glob is one. Each
secret cell of the copy is replaced before it is stored:

- `secrets = "redact"`: by the text `vault:redacted`. The value is not in the backup. A
  restore puts the target's live value back where the target still has the row (the same
  key, or the same rowid); a row the target lacks comes back holding the marker;
- `secrets = "encrypt"`: by `vault:sealed:<base64>`, the value's typed encoding sealed with
  the repository's secret sealer; a restore opens it (the value comes back, type for type).
  A cell this repository's key does not open (a snapshot imported from another one) is
  restored as a redacted one.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from vault.repository.crypto import DecryptionFailed
from vault.sources.base import SecretSealer, StoredItems
from vault.sources.settings.codec import canonical_bytes, decode, encode
from vault.sources.settings.errors import SealerMissing
from vault.sources.settings.secrets import SecretMatcher
from vault.sources.sqlite.db import SqliteError, quote

REDACTED_TEXT = "vault:redacted"
SEALED_PREFIX = "vault:sealed:"
SecretsMode = Literal["redact", "encrypt"]


@dataclass(frozen=True)
class SecretTable:
    table: str
    key_column: str | None = None
    value_column: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "key_column": self.key_column,
                "value_column": self.value_column}


@dataclass(frozen=True)
class SecretFields:
    """What a source protects, and how."""

    tables: tuple[SecretTable, ...]
    mode: SecretsMode
    patterns: tuple[str, ...]


def protect_copy(copy_path: Path, fields: SecretFields, sealer: SecretSealer | None,
                 name: str) -> dict[str, Any]:
    """Replace every secret cell of the copy; what was done, for the snapshot's meta."""
    if fields.mode == "encrypt" and sealer is None:
        raise SealerMissing('secrets = "encrypt" needs the repository\'s secret sealer, and '
                            "the capture has none", name=name)
    matcher = SecretMatcher(fields.patterns)
    conn = sqlite3.connect(copy_path, isolation_level=None)
    cells: dict[str, int] = {}
    try:
        # The replaced values must not linger in freed space; unlike VACUUM, this keeps
        # the copy's page order, so unchanged pages still deduplicate.
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("BEGIN IMMEDIATE")
        for spec in fields.tables:
            cells[spec.table] = _protect_table(conn, spec, matcher, fields.mode, sealer)
        conn.execute("COMMIT")
    except sqlite3.Error as error:
        raise SqliteError(path=str(copy_path), detail=f"secret_tables: {error}") from error
    finally:
        conn.close()
    return {"mode": fields.mode, "tables": [t.to_json() for t in fields.tables],
            "cells": cells}


def _protect_table(conn: sqlite3.Connection, spec: SecretTable, matcher: SecretMatcher,
                   mode: SecretsMode, sealer: SecretSealer | None) -> int:
    table = quote(spec.table)
    columns = [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")]
    if not columns:
        raise sqlite3.OperationalError(f"no table {spec.table!r}")
    if spec.key_column is not None and spec.value_column is not None:
        rows = conn.execute(f"SELECT rowid, {quote(spec.key_column)}, "
                            f"{quote(spec.value_column)} FROM {table}").fetchall()
        targets = [(rowid, spec.value_column, value) for rowid, key, value in rows
                   if key is not None and matcher.is_secret(key, str(key))]
    else:
        secret_columns = [c for c in columns if matcher.is_secret(c, c)]
        targets = []
        for column in secret_columns:
            rows = conn.execute(f"SELECT rowid, {quote(column)} FROM {table} "
                                f"WHERE {quote(column)} IS NOT NULL").fetchall()
            targets += [(rowid, column, value) for rowid, value in rows]
    for rowid, column, value in targets:
        hidden = REDACTED_TEXT if mode == "redact" or sealer is None else _sealed(value, sealer)
        conn.execute(f"UPDATE {table} SET {quote(column)} = ? WHERE rowid = ?", (hidden, rowid))
    return len(targets)


def _sealed(value: Any, sealer: SecretSealer) -> str:
    return SEALED_PREFIX + base64.b64encode(sealer.seal(canonical_bytes(encode(value)))).decode()


def _opened(text: str, sealer: SecretSealer) -> Any:
    """The sealed value; _ABSENT when this repository's key does not open it (a snapshot
    imported from another repository): the cell is then treated as a redacted one."""
    try:
        sealed = base64.b64decode(text[len(SEALED_PREFIX):], validate=True)
        return decode(json.loads(sealer.unseal(sealed)))
    except (DecryptionFailed, ValueError, KeyError, TypeError):
        return _ABSENT


def reveal_copy(copy_path: Path, meta: dict[str, Any], sealer: SecretSealer | None,
                live: Path | None, name: str) -> None:
    """The stored copy made whole for a restore: sealed cells opened, redacted cells
    given the live target's value where it still has the row."""
    conn = sqlite3.connect(copy_path, isolation_level=None)
    try:
        if live is not None and live.exists():
            conn.execute("ATTACH DATABASE ? AS live", (str(live),))  # read from only
        conn.execute("BEGIN IMMEDIATE")
        for spec in meta.get("tables", []):
            _reveal_table(conn, spec, sealer, live is not None and live.exists(), name)
        conn.execute("COMMIT")
    except sqlite3.Error as error:
        raise SqliteError(path=str(copy_path), detail=f"secret_tables: {error}") from error
    finally:
        conn.close()


def _reveal_table(conn: sqlite3.Connection, spec: dict[str, Any], sealer: SecretSealer | None,
                  has_live: bool, name: str) -> None:
    table = quote(str(spec["table"]))
    key, value = spec.get("key_column"), spec.get("value_column")
    columns = [value] if key and value else [
        str(row[1]) for row in conn.execute(f"PRAGMA main.table_info({table})")]
    for column in columns:
        col = quote(str(column))
        marked = conn.execute(f"SELECT rowid, {col} FROM main.{table} WHERE {col} = ? OR "
                              f"substr({col}, 1, {len(SEALED_PREFIX)}) = ?",
                              (REDACTED_TEXT, SEALED_PREFIX)).fetchall()
        for rowid, text in marked:
            new: Any = _ABSENT
            if str(text).startswith(SEALED_PREFIX):
                if sealer is None:
                    raise SealerMissing("the backup holds encrypted secrets and the restore "
                                        "was given no secret sealer to open them", name=name)
                new = _opened(str(text), sealer)
            if new is _ABSENT and has_live:
                new = _live_value(conn, table, col, key, rowid)
            if new is not _ABSENT:
                conn.execute(f"UPDATE main.{table} SET {col} = ? WHERE rowid = ?", (new, rowid))


_ABSENT = object()


def _live_value(conn: sqlite3.Connection, table: str, col: str, key: str | None,
                rowid: int) -> Any:
    """The target's value of this cell: the row with the same key (a key/value table) or
    the same rowid; _ABSENT when the target has no such row (or no such table)."""
    try:
        if key:
            found = conn.execute(f"SELECT l.{col} FROM live.{table} AS l JOIN main.{table} AS m"
                                 f" ON l.{quote(key)} = m.{quote(key)} WHERE m.rowid = ?",
                                 (rowid,)).fetchone()
        else:
            found = conn.execute(f"SELECT {col} FROM live.{table} WHERE rowid = ?",
                                 (rowid,)).fetchone()
    except sqlite3.OperationalError:
        return _ABSENT  # the live database has no such table or column
    return _ABSENT if found is None else found[0]


class RevealedItems:
    """A snapshot's stored database, copied to scratch and revealed (a StoredItems)."""

    def __init__(self, stored: StoredItems, item: str, copy: Path) -> None:
        self.meta = stored.meta
        self._item = item
        self._copy = copy
        self._stored = stored

    def paths(self) -> list[str]:
        return self._stored.paths()

    def size(self, path: str) -> int:
        return self._copy.stat().st_size if path == self._item else self._stored.size(path)

    def open(self, path: str) -> AbstractContextManager[BinaryIO]:
        if path != self._item:
            return self._stored.open(path)
        return open(self._copy, "rb")


@contextmanager
def revealed(stored: StoredItems, sealer: SecretSealer | None, live: Path,
             scratch_dir: str | None, name: str) -> Iterator[StoredItems]:
    """`stored` as it was before its secrets were protected (as far as that can be)."""
    meta = stored.meta.get("secret_fields")
    if not meta:
        yield stored
        return
    item = str(stored.meta.get("item") or next(iter(stored.paths())))
    workdir = Path(tempfile.mkdtemp(prefix="vault-sqlite-secrets-", dir=scratch_dir))
    try:
        copy = workdir / "revealed.db"
        with stored.open(item) as source, open(copy, "wb") as target:
            shutil.copyfileobj(source, target)
        reveal_copy(copy, meta, sealer, live, name)
        yield RevealedItems(stored, item, copy)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def secret_tables_from_config(entries: Iterable[Any]) -> tuple[SecretTable, ...]:
    return tuple(SecretTable(e.table, e.key_column, e.value_column) for e in entries)
