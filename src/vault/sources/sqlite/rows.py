"""A SQLite table's rows as key -> fingerprint, for restoring row by row.

A row is named by its table's key: the rowid of a table without an explicit primary key,
the INTEGER PRIMARY KEY column that aliases the rowid, or the primary key columns of any
other table (WITHOUT ROWID tables included). A table with no primary key whose columns take
every rowid alias (rowid, _rowid_, oid) has no key at all (kind "none"): its rows, like
those of a table whose key holds NULLs in several rows, are restored whole. A row's
fingerprint hashes its stored values with their storage classes, so 1, 1.0, '1' and X'31'
are four different rows.

`fingerprint`, `key_text` and `sql_literal` are pure; `table_shape` and `read_rows` read.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vault.sources.sqlite.db import quote

__all__ = ["KeyKind", "TableRows", "TableShape", "decode_text", "encode_row", "fingerprint",
           "key_params", "key_text", "read_prints", "read_rows", "sql_literal", "table_shape"]

KeyKind = Literal["rowid", "integer_pk", "pk", "none"]
_ROWID_ALIASES = ("rowid", "_rowid_", "oid")


@dataclass(frozen=True)
class TableShape:
    """How a table's rows are named. `columns` are its stored columns (generated ones are
    computed again); `key` the SQL expressions that name a row, in primary key order."""

    name: str
    columns: tuple[str, ...]
    kind: KeyKind
    key: tuple[str, ...]

    @property
    def integer_key(self) -> bool:
        """Whether a row can be given a new key (a rowid, or the column aliasing it)."""
        return self.kind in ("rowid", "integer_pk")

    @property
    def where(self) -> str:
        """The condition that picks one row by its key (IS: a key column of a rowid table
        may hold NULL; an integer key never does)."""
        equals = "IS" if self.kind == "pk" else "="
        return " AND ".join(f"{expression} {equals} ?" for expression in self.key)

    @property
    def insert_columns(self) -> tuple[str, ...]:
        """What an INSERT that keeps the row's key names: the rowid too, without an alias."""
        stored = tuple(quote(column) for column in self.columns)
        return (self.key[0], *stored) if self.kind == "rowid" else stored

    def describe_key(self) -> str:
        return ", ".join(self.key) if self.key else "no key"


@dataclass
class TableRows:
    """One side's rows of one table: key -> fingerprint, and each row's encoded size."""

    fingerprints: dict[Hashable, bytes]
    sizes: dict[Hashable, int]
    duplicate_keys: int = 0  # rows sharing a key (NULLs in a rowid table's PRIMARY KEY)


def table_shape(conn: sqlite3.Connection, schema: str, table: str) -> TableShape:
    where = f"{quote(schema)}.{quote(table)}"
    info = conn.execute(f"PRAGMA {quote(schema)}.table_xinfo({quote(table)})").fetchall()
    columns = tuple(str(row[1]) for row in info if row[6] == 0)
    primary = [str(row[1]) for row in sorted((r for r in info if r[5] > 0), key=lambda r: r[5])]
    has_pk_index = any(row[3] == "pk" for row in conn.execute(
        f"PRAGMA {quote(schema)}.index_list({quote(table)})"))
    rowid = rowid_alias(conn, where, {column.lower() for column in columns})
    if primary and (has_pk_index or rowid is None or len(primary) > 1):
        return TableShape(table, columns, "pk", tuple(quote(c) for c in primary))
    if primary:  # one INTEGER PRIMARY KEY column without its own index: the rowid itself
        return TableShape(table, columns, "integer_pk", (quote(primary[0]),))
    if rowid is None:  # its columns are named rowid, _rowid_ and oid
        return TableShape(table, columns, "none", ())
    return TableShape(table, columns, "rowid", (rowid,))


def rowid_alias(conn: sqlite3.Connection, where: str, taken: set[str]) -> str | None:
    for alias in _ROWID_ALIASES:
        if alias not in taken:
            try:
                conn.execute(f"SELECT {alias} FROM {where} LIMIT 0")
            except sqlite3.OperationalError:
                return None  # a WITHOUT ROWID table
            return alias
    return None


def read_rows(conn: sqlite3.Connection, schema: str, shape: TableShape) -> TableRows:
    """Every row of `schema`.`shape.name` over the snapshot's columns (a target may have
    more columns; those a restore does not set are not compared)."""
    listed = ", ".join((*shape.key, *(quote(c) for c in shape.columns)))
    width = len(shape.key)
    rows = TableRows({}, {})
    cursor = conn.execute(f"SELECT {listed} FROM {quote(schema)}.{quote(shape.name)}")
    for row in cursor:
        key: Hashable = row[0] if shape.kind != "pk" else tuple(row[:width])
        encoded = encode_row(row[width:])
        if key in rows.fingerprints:
            rows.duplicate_keys += 1
        rows.fingerprints[key] = hashlib.blake2b(encoded, digest_size=16).digest()
        rows.sizes[key] = len(encoded)
    return rows


def read_prints(conn: sqlite3.Connection, schema: str, shape: TableShape
                ) -> list[tuple[bytes, int]]:
    """Every row's (fingerprint, encoded size) over the snapshot's columns, in the
    table's order: the rows of a table restored whole, paired by content only."""
    listed = ", ".join(quote(c) for c in shape.columns)
    prints: list[tuple[bytes, int]] = []
    for row in conn.execute(f"SELECT {listed} FROM {quote(schema)}.{quote(shape.name)}"):
        encoded = encode_row(row)
        prints.append((hashlib.blake2b(encoded, digest_size=16).digest(), len(encoded)))
    return prints


def fingerprint(values: Sequence[Any]) -> bytes:
    """The hash of a row's values and their storage classes."""
    return hashlib.blake2b(encode_row(values), digest_size=16).digest()


def encode_row(values: Sequence[Any]) -> bytes:
    return b"".join(_encode_value(value) for value in values)


def _encode_value(value: Any) -> bytes:
    if value is None:
        return b"N"
    if isinstance(value, int):
        return b"I" + value.to_bytes(8, "big", signed=True)
    if isinstance(value, float):
        return b"R" + struct.pack(">d", value)
    if isinstance(value, str):  # decoded with surrogateescape: these are the stored bytes
        data = value.encode("utf-8", "surrogateescape")
        return b"T" + len(data).to_bytes(8, "big") + data
    if isinstance(value, bytes):
        return b"B" + len(value).to_bytes(8, "big") + value
    raise TypeError(f"not a SQLite value: {type(value).__name__}")


def key_text(key: Hashable) -> str:
    """A row's key as people read it: `5`, or `'alice', 2` for a composite key. Distinct
    keys give distinct texts (the plan names rows by them)."""
    if isinstance(key, tuple):
        return ", ".join(sql_literal(value) for value in key)
    return sql_literal(key)


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"X'{value.hex().upper()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)  # int, or a float's shortest exact spelling


def key_params(key: Hashable) -> tuple[Any, ...]:
    return key if isinstance(key, tuple) else (key,)


def decode_text(data: bytes) -> str:
    """The connection's text factory: invalid UTF-8 stays readable and byte-exact."""
    return data.decode("utf-8", "surrogateescape")
