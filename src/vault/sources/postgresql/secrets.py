"""Secrets inside a PostgreSQL database: the settings source's secret globs applied to
named tables, in the stored copy only (the application's database is never written).

The table rows of a capture are plain COPY blocks (`tables/<schema>/<table>.sql`); the
blocks of the tables named in `[[sources.secret_tables]]` are rewritten line by line
while pg_dump streams them, so no secret byte reaches the repository. With `key_column`
and `value_column` a table is a key/value table (the value of every row whose key matches
a glob is a secret); without them, every value of a column whose name matches is one.
A secret field (never a NULL) is replaced by:

- `secrets = "redact"`: the text `vault:redacted` (a JSON string for json/jsonb). A restore
  puts the target's live value back where the target still has the row (same key, or same
  primary key); elsewhere the marker is restored;
- `secrets = "encrypt"`: `vault:sealed:<base64>`, the field's exact COPY text sealed with
  the repository's secret sealer; a restore opens it (the value comes back exactly). One
  this repository's key does not open (an imported snapshot) restores as a redacted one.

A secret column must take the marker as input: text, varchar (of 14 or more), citext,
bytea, json or jsonb; any other type fails the capture (docs/sources.md).
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from vault.errors import UsageError
from vault.repository.crypto import DecryptionFailed
from vault.sources.base import RewrittenItems, SecretSealer, StoredItems
from vault.sources.postgresql.client import PgClients, client_env, run_sql
from vault.sources.postgresql.rows_plan import (
    copy_columns,
    ident,
    literal,
    python_codec,
    unescape_copy_field,
)
from vault.sources.postgresql.tools import (
    PgDatabaseMissing,
    PgTarget,
    PgUnknownTable,
    TableRef,
    classify_failure,
    conninfo,
    select_tables,
)
from vault.sources.settings.errors import SealerMissing
from vault.sources.settings.secrets import SecretMatcher
from vault.sources.sqlite.secrets import REDACTED_TEXT, SEALED_PREFIX, SecretFields

MARKER = REDACTED_TEXT.encode()
PREFIX = SEALED_PREFIX.encode()
_TEXT_TYPES = frozenset({"text", "varchar", "citext", "bytea", "json", "jsonb"})
_JSON_TYPES = frozenset({"json", "jsonb"})

_COLUMNS_SQL = """SELECT coalesce(jsonb_agg(jsonb_build_array(a.attname, t.typname,
  format_type(a.atttypid, a.atttypmod), a.atttypmod) ORDER BY a.attnum), '[]')
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = {table}::regclass AND a.attnum > 0 AND NOT a.attisdropped;"""

_LIVE_COLUMNS_SQL = """SELECT coalesce(json_agg(attname), '[]') FROM pg_attribute
WHERE attrelid = to_regclass(:'t') AND attnum > 0 AND NOT attisdropped;"""


class PgSecretColumnType(UsageError):
    """secret_tables: column {column} of table {table} is {type}, which cannot hold the redaction marker; a secret column must be text, varchar(14 or more), citext, bytea, json or jsonb"""  # noqa: E501


class PgSecretColumnMissing(UsageError):
    """secret_tables: table {table} has no column {column!r}"""


# --- capture ---------------------------------------------------------------------------------


def plan_tables(query: Callable[[str], Any], tables: list[dict[str, Any]],
                fields: SecretFields, *, only_present: bool = False) -> list[dict[str, Any]]:
    """Each named table's entry: its item, the secret columns and how to find its rows.
    `query(sql)` answers one jsonb value in the capture's snapshot. A named table the
    capture lacks is an error (a misspelt name would leave the real one unprotected),
    unless `only_present` (an undo copy of a restore's target, which may lack it)."""
    refs = [TableRef(t["schema"], t["name"]) for t in tables]
    matcher = SecretMatcher(fields.patterns)
    plans = []
    for spec in fields.tables:
        try:
            (ref,) = select_tables(refs, [spec.table])
        except PgUnknownTable:
            if only_present:
                continue
            raise
        entry = tables[refs.index(ref)]
        columns = query(_COLUMNS_SQL.format(table=literal(f"{ident(ref.schema)}."
                                                          f"{ident(ref.name)}")))
        names = [str(c[0]) for c in columns]
        for needed in (spec.key_column, spec.value_column):
            if needed is not None and needed not in names:
                raise PgSecretColumnMissing(table=ref.qualified, column=needed)
        secret = [spec.value_column] if spec.value_column else [
            n for n in names if matcher.is_secret(n, n)]
        kinds = {str(c[0]): (str(c[1]), str(c[2]), int(c[3])) for c in columns}
        for name in secret:
            _check_type(ref.qualified, name, *kinds[name])
        plans.append({"schema": ref.schema, "name": ref.name, "item": entry["item"],
                      "key_column": spec.key_column, "value_column": spec.value_column,
                      "columns": secret,
                      "json_columns": [n for n in secret if kinds[n][0] in _JSON_TYPES],
                      "key": [spec.key_column] if spec.key_column else list(entry["key"]),
                      "cells": 0})
    return plans


def _check_type(table: str, column: str, typname: str, shown: str, typmod: int) -> None:
    # varchar's typmod is its length + 4 (-1: unlimited)
    too_short = typname == "varchar" and 0 <= typmod - 4 < len(REDACTED_TEXT)
    if typname not in _TEXT_TYPES or too_short:
        raise PgSecretColumnType(table=table, column=column, type=shown)


def protect_stream(parts: Iterator[bytes], plan: dict[str, Any], fields: SecretFields,
                   sealer: SecretSealer | None, codec: str, name: str) -> Iterator[bytes]:
    """A table's COPY block with every secret field replaced; counts them in `plan`."""
    if fields.mode == "encrypt" and sealer is None:
        raise SealerMissing('secrets = "encrypt" needs the repository\'s secret sealer, and '
                            "the capture has none", name=name)
    matcher = SecretMatcher(fields.patterns)

    def row_rewriter(columns: list[str]) -> Callable[[bytes], bytes]:
        secret = [columns.index(c) for c in plan["columns"] if c in columns]
        json_at = {columns.index(c) for c in plan["json_columns"] if c in columns}
        key_at = columns.index(plan["key_column"]) if plan["key_column"] else None

        def protect_row(line: bytes) -> bytes:
            values = line.split(b"\t")
            if key_at is not None:
                key = unescape_copy_field(values[key_at].decode(codec, "replace"))
                if key is None or not matcher.is_secret(key, key):
                    return line
            for at in secret:
                if values[at] != b"\\N":
                    hidden = MARKER if sealer is None or fields.mode == "redact" else \
                        PREFIX + base64.b64encode(sealer.seal(values[at]))
                    values[at] = _json_string(hidden) if at in json_at else hidden
                    plan["cells"] += 1
            return b"\t".join(values)

        return protect_row

    return rewrite_copy(parts, row_rewriter, codec)


def rewrite_copy(parts: Iterator[bytes], row_rewriter: Callable[[list[str]],
                 Callable[[bytes], bytes]], codec: str) -> Iterator[bytes]:
    """`parts` (a plain data-only dump of one table) with each data line of its COPY block
    passed through the function `row_rewriter` makes from the block's column names. A data
    line never holds a raw newline (COPY escapes it), so lines are rows."""
    rewrite: Callable[[bytes], bytes] | None = None
    done, carry = False, b""
    for part in parts:
        *lines, carry = (carry + part).split(b"\n")
        out = []
        for line in lines:
            if rewrite is None and not done and line.startswith(b"COPY ") \
                    and line.endswith(b") FROM stdin;"):
                rewrite = row_rewriter(copy_columns(line.decode(codec)))
            elif rewrite is not None:
                if line == b"\\.":
                    rewrite, done = None, True
                else:
                    line = rewrite(line)
            out.append(line)
        if out:
            yield b"\n".join(out) + b"\n"
    if carry:
        yield carry


def _json_string(text: bytes) -> bytes:
    return b'"' + text + b'"'


# --- restore ---------------------------------------------------------------------------------

LiveRows = dict[tuple[bytes, ...], list[bytes]]  # key fields -> the secret fields, COPY text


def live_values(clients: PgClients, target: PgTarget, meta: Mapping[str, Any]
                ) -> dict[str, LiveRows]:
    """The target's current secret fields of every protected table, by item, read before
    the restore changes anything. A table (or database) the target lacks, or a table
    without a key to match rows by, has none."""
    found: dict[str, LiveRows] = {}
    for plan in meta["secret_fields"]["tables"]:
        if not plan["key"]:
            continue
        qualified = f"{ident(plan['schema'])}.{ident(plan['name'])}"
        try:
            have = set(_json_list(run_sql(clients, target, _LIVE_COLUMNS_SQL,
                                          {"t": qualified})))
        except PgDatabaseMissing:
            return {}
        wanted = [*plan["key"], *plan["columns"]]
        if not set(wanted) <= have:
            continue
        script = (f"SET client_encoding TO {literal(str(meta.get('encoding', 'UTF8')))};\n"
                  f"COPY (SELECT {', '.join(map(ident, wanted))} FROM {qualified}) TO STDOUT;\n")
        text = _copy_out(clients, target, script, f"table {plan['schema']}.{plan['name']}")
        rows: LiveRows = {}
        width = len(plan["key"])
        for line in text.split(b"\n"):
            if line:
                values = line.split(b"\t")
                rows[tuple(values[:width])] = values[width:]
        found[plan["item"]] = rows
    return found


def _copy_out(clients: PgClients, target: PgTarget, script: str, what: str) -> bytes:
    """What `script`'s COPY ... TO STDOUT prints, as bytes (in the database's encoding)."""
    argv = [clients.psql, "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1",
            "--dbname", conninfo(target), "-f", "-"]
    done = subprocess.run(argv, input=script.encode(), capture_output=True, check=False,
                          env=client_env(target))
    if done.returncode != 0:
        raise classify_failure("psql", what, target, done.stderr.decode(errors="replace"))
    return done.stdout


def _json_list(text: str) -> list[str]:
    return [str(name) for name in json.loads(text or "[]")]


def reveal_stream(parts: Iterator[bytes], plan: dict[str, Any], live: LiveRows | None,
                  sealer: SecretSealer | None, codec: str, name: str) -> Iterator[bytes]:
    """The stored COPY block made whole: sealed fields opened, redacted ones given the
    target's live value where it has the row, the marker elsewhere."""

    def row_rewriter(columns: list[str]) -> Callable[[bytes], bytes]:
        secret = [columns.index(c) for c in plan["columns"] if c in columns]
        json_at = {columns.index(c) for c in plan["json_columns"] if c in columns}
        key_at = [columns.index(c) for c in plan["key"] if c in columns]

        def reveal_row(line: bytes) -> bytes:
            values = line.split(b"\t")
            live_row = live.get(tuple(values[i] for i in key_at)) if live else None
            for position, at in enumerate(secret):
                text = values[at][1:-1] if at in json_at else values[at]
                if text != MARKER and not text.startswith(PREFIX):
                    continue
                opened = _opened(text, sealer, name) if text.startswith(PREFIX) else None
                if opened is None and live_row is not None:
                    opened = live_row[position]
                if opened is None:
                    opened = _json_string(MARKER) if at in json_at else MARKER
                values[at] = opened
            return b"\t".join(values)

        return reveal_row

    return rewrite_copy(parts, row_rewriter, codec)


def _opened(text: bytes, sealer: SecretSealer | None, name: str) -> bytes | None:
    if sealer is None:
        raise SealerMissing("the backup holds encrypted secrets and the restore was given "
                            "no secret sealer to open them", name=name)
    try:
        return sealer.unseal(base64.b64decode(text[len(PREFIX):], validate=True))
    except (DecryptionFailed, ValueError):
        return None  # another repository's key sealed it: restored like a redacted one


class RevealedItems(RewrittenItems):
    """A snapshot's stored items with the protected tables' blocks revealed as they are
    read (a StoredItems). Sizes are the stored ones (revealed blocks differ a little)."""

    def __init__(self, stored: StoredItems, live: dict[str, LiveRows],
                 sealer: SecretSealer | None, name: str) -> None:
        super().__init__(stored)
        self._plans = {p["item"]: p for p in stored.meta["secret_fields"]["tables"]}
        self._live, self._sealer, self._name = live, sealer, name

    def rewriter(self, path: str) -> Callable[[], Iterable[bytes]] | None:
        plan = self._plans.get(path)
        if plan is None:
            return None
        return lambda: self._revealed(path, plan)

    def _revealed(self, path: str, plan: dict[str, Any]) -> Iterator[bytes]:
        with self._stored.open(path) as stream:
            parts = iter(lambda: stream.read(1 << 20), b"")
            yield from reveal_stream(parts, plan, self._live.get(path), self._sealer,
                                     python_codec(self.meta), self._name)


@contextmanager
def revealed(clients: PgClients, target: PgTarget, stored: StoredItems,
             sealer: SecretSealer | None, name: str) -> Iterator[StoredItems]:
    """`stored` as it was before its secrets were protected (as far as that can be)."""
    if not stored.meta.get("secret_fields"):
        yield stored
        return
    yield RevealedItems(stored, live_values(clients, target, stored.meta), sealer, name)
