"""Restoring a PostgreSQL capture: pg_restore for the archive, psql for each table's rows.

The order is the one pg_restore itself uses, split around the rows: definitions
(pre-data), then the rows of every table, then the rest of the archive's data (sequence
values, large objects), then indexes, constraints and triggers (post-data), so rows load
fast and foreign keys are checked once, on the complete data.

Everything is checked before the target is touched (the snapshot's format, the names in
`only`, an existing non-empty database in mode "new"). Mode "replace" is not atomic: a
failure in the middle leaves the database partly replaced; restore into a new database
and switch over when that matters.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from vault.errors import UsageError
from vault.planning.restore_plan import RestorePlan
from vault.sources.base import (
    CountingReader,
    SourceRestoreRequest,
    SourceRestoreResult,
    StoredItems,
)
from vault.sources.entities import Entity, entities_from_meta, entity_selection_of
from vault.sources.postgresql.client import PgClients, capture_output, feed_input, run_sql
from vault.sources.postgresql.rows import restore_entity_rows, restore_rows
from vault.sources.postgresql.rows_plan import (
    CopyBlock,
    RowSides,
    copy_line_keys,
    data_lines,
    python_codec,
)
from vault.sources.postgresql.tools import (
    SCHEMA_ITEM,
    PgTarget,
    PgTargetNotEmpty,
    TableRef,
    conninfo,
    restore_target,
    select_tables,
)

FORMAT = 1
READ_SIZE = 1 << 20
_NOT_WITH_SOME_TABLES = ("FK CONSTRAINT", "BLOB", "BLOBS", "LARGE OBJECT")

_DATABASE_EXISTS = "SELECT count(*) FROM pg_database WHERE datname = :'db';"
_CREATE_DATABASE = """SELECT format('CREATE DATABASE %I TEMPLATE template0 ENCODING %L',
                                    :'db', :'encoding') \\gexec"""

# Anything a user made: relations, routines, schemas other than public, large objects.
_OBJECT_COUNT = r"""SELECT
 (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%')
 + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
 + (SELECT count(*) FROM pg_namespace WHERE nspname <> 'public'
    AND nspname <> 'information_schema' AND nspname NOT LIKE 'pg\_%')
 + (SELECT count(*) FROM pg_largeobject_metadata);"""

_TABLE_EXISTS = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :'schema' AND c.relname = :'name';"""

# pg_restore --clean drops a table without CASCADE, which fails while another table's
# foreign key points at it; the snapshot's tables' own foreign keys come back in post-data.
_DROP_FOREIGN_KEYS = """SELECT format('ALTER TABLE %I.%I DROP CONSTRAINT IF EXISTS %I',
                     n.nspname, c.relname, con.conname)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN jsonb_to_recordset(:'tables'::jsonb) AS t(schema text, name text)
  ON t.schema = n.nspname AND t.name = c.relname
WHERE con.contype = 'f' \\gexec"""


def restore(clients: PgClients, source: PgTarget, stored: StoredItems,
            request: SourceRestoreRequest,
            entities: Sequence[Entity] = ()) -> SourceRestoreResult:
    """Restore a snapshot into `request.target` (or the source's own database). A query
    selects an entity of `entities` (or of the hierarchy the snapshot's meta records) and
    everything below it, row by row; with `remap_ids` it goes in as a new copy."""
    meta = stored.meta
    if meta.get("format") != FORMAT:
        raise UsageError(f"this snapshot's PostgreSQL items have format {meta.get('format')!r};"
                         f" this vault reads format {FORMAT}")
    entries = {TableRef(t["schema"], t["name"]): t for t in meta["tables"]}
    if request.query is not None or request.remap_ids:
        _check_entity_request(request)
        return restore_entity_rows(clients, restore_target(source, request.target), stored,
                                   request, tuple(entities) or entities_from_meta(meta),
                                   entries)
    chosen = select_tables(list(entries), request.only)
    target = restore_target(source, request.target)
    if request.mode in ("overwrite", "merge"):
        return restore_rows(clients, target, stored, request, chosen, entries)
    if request.dry_run:
        return _dry_run_whole(clients, source, target, stored, request, chosen, entries)
    plan = _whole_plan(stored, request, chosen, entries) if request.plan_mode == "new-target" \
        else None
    existed = _prepare_database(clients, source, target, request.mode, meta)
    run = _Run(clients, target, stored)
    if not request.only:
        run.whole_database(chosen, entries, clean=existed)
    elif not existed:
        run.tables_into_empty(chosen, entries)
    else:
        for table in chosen:
            run.one_table(table, entries[table])
    rows = {t.qualified: entries[t]["rows"] for t in chosen}
    details: dict[str, Any] = {"database": target.dbname, "tables": rows}
    if plan is not None:
        details["plan"] = plan.to_json()
    return SourceRestoreResult(items=len(run.reader.paths), bytes=run.reader.bytes, details=details,
                               plan=plan)


def _check_entity_request(request: SourceRestoreRequest) -> None:
    """An entity restore's request, refused before anything is read or connected to."""
    if request.query is None:
        raise UsageError("new ids follow an entity's references: select one with --query "
                         "'{\"entity\": NAME, \"ids\": [...]}'")
    entity_selection_of(request.query, "PostgreSQL")
    if request.only:
        raise UsageError("an entity restore takes the entity's tables; give --only or an "
                         "entity --query, not both")
    if request.mode == "replace":
        raise UsageError("mode replace swaps whole tables; an entity restore goes row by "
                         "row: use --mode merge, overwrite or new-target")


def _whole_plan(stored: StoredItems, request: SourceRestoreRequest, chosen: list[TableRef],
                entries: dict[TableRef, Any]) -> RestorePlan:
    """Mode new-target: every row of the chosen tables is created; keys are read from the
    stored COPY blocks by the primary key the capture recorded (row ordinals `#n` for a
    table without one, or a snapshot older than that record)."""
    sides = RowSides()
    for table in chosen:
        entry = entries[table]
        block = CopyBlock(_read_item(stored, entry["item"]), table.qualified)
        columns = block.columns()
        lines = list(_data_lines(block.rows(), python_codec(stored.meta)))
        keys = copy_line_keys(lines, columns, list(entry.get("key", [])))
        for line, key in zip(lines, keys, strict=True):
            sides.add_snapshot(table.qualified, key, key, len(line.encode()) + 1)
    return sides.plan("new-target", request.on_conflict)


def _dry_run_whole(clients: PgClients, source: PgTarget, target: PgTarget,
                   stored: StoredItems, request: SourceRestoreRequest, chosen: list[TableRef],
                   entries: dict[TableRef, Any]) -> SourceRestoreResult:
    """Mode new-target, planned only: the same refusal as the real restore (a target that
    holds something), then the plan; nothing is created."""
    if request.plan_mode != "new-target":
        return restore_rows(clients, target, stored, request, chosen, entries)
    same_server = (target.host, target.port) == (source.host, source.port)
    admin = target.with_database(source.dbname if same_server else "postgres")
    found = run_sql(clients, admin, _DATABASE_EXISTS, {"db": target.dbname})
    if found != "0" and run_sql(clients, target, _OBJECT_COUNT) != "0":
        raise PgTargetNotEmpty(database=target.dbname, at=target.at)
    plan = _whole_plan(stored, request, chosen, entries)
    return SourceRestoreResult(details={"database": target.dbname, "plan": plan.to_json(),
                                        "tables": plan.by_group()}, plan=plan)


def _data_lines(parts: Iterable[bytes], codec: str) -> Iterator[str]:
    """The data lines of a COPY block, decoded one at a time rather than the whole table
    at once."""
    for line in data_lines(parts):
        yield line.decode(codec)


def _read_item(stored: StoredItems, path: str) -> Iterator[bytes]:
    with stored.open(path) as stream:
        while part := stream.read(READ_SIZE):
            yield part


def _prepare_database(clients: PgClients, source: PgTarget, target: PgTarget, mode: str,
                      meta: dict[str, Any]) -> bool:
    """Create the target database if it is missing; refuse a non-empty one in mode "new".
    Whether it held anything before (so objects must be replaced)."""
    # To look a database up or create it, connect to one that exists: the source's own
    # when the target is on the same server, else the maintenance database.
    same_server = (target.host, target.port) == (source.host, source.port)
    admin = target.with_database(source.dbname if same_server else "postgres")
    found = run_sql(clients, admin, _DATABASE_EXISTS, {"db": target.dbname})
    if found == "0":
        run_sql(clients, admin, _CREATE_DATABASE,
                {"db": target.dbname, "encoding": str(meta.get("encoding", "UTF8"))})
        return False
    empty = run_sql(clients, target, _OBJECT_COUNT) == "0"
    if mode in ("new", "new-target") and not empty:
        raise PgTargetNotEmpty(database=target.dbname, at=target.at)
    return not empty


class _Run:
    """The client commands of one restore, and what they read."""

    def __init__(self, clients: PgClients, target: PgTarget, stored: StoredItems) -> None:
        self.clients, self.target = clients, target
        self.reader = CountingReader(stored, READ_SIZE)
        self.restrict = clients.psql_has_restrict()

    def whole_database(self, tables: list[TableRef], entries: dict[TableRef, Any],
                       clean: bool) -> None:
        if clean:
            listed = json.dumps([{"schema": t.schema, "name": t.name} for t in tables])
            run_sql(self.clients, self.target, _DROP_FOREIGN_KEYS, {"tables": listed})
        self._pg_restore(["--section=pre-data", *(["--clean", "--if-exists"] if clean else [])])
        for table in tables:
            self._rows(table, entries[table], truncate=False)
        self._pg_restore(["--section=data"])
        self._pg_restore(["--section=post-data"])

    def tables_into_empty(self, tables: list[TableRef], entries: dict[TableRef, Any]) -> None:
        """Some tables into an empty database: every definition (a table needs its types,
        functions and sequences), the rows of the chosen tables only, and no foreign keys
        or large objects, which could not hold or do not belong with a part of the rows."""
        with tempfile.NamedTemporaryFile("w", suffix=".list") as listing:
            listing.write(self._listing_without(_NOT_WITH_SOME_TABLES))
            listing.flush()
            chosen = [f"--use-list={listing.name}"]
            self._pg_restore(["--section=pre-data", *chosen])
            for table in tables:
                self._rows(table, entries[table], truncate=False)
            self._pg_restore(["--section=data", *chosen])
            self._pg_restore(["--section=post-data", *chosen])

    def _listing_without(self, kinds: tuple[str, ...]) -> str:
        """The archive's table of contents (`pg_restore --list`) without entries of `kinds`;
        a line reads "3210; 2606 16399 FK CONSTRAINT s2 u u_a_fkey app"."""
        argv = [self.clients.pg_restore, "--list"]
        listing = capture_output(argv, self.target, "the database schema",
                                 self.reader.read(SCHEMA_ITEM))
        kept = [line for line in listing.splitlines()
                if not any(f" {kind} " in line.split(";", 1)[-1] for kind in kinds)]
        return "\n".join(kept) + "\n"

    def one_table(self, table: TableRef, entry: dict[str, Any]) -> None:
        """Like `pg_restore --table`: the table's definition (when the target lacks it)
        and its rows; an existing table keeps its definition and indexes and gets its rows
        replaced."""
        exists = run_sql(self.clients, self.target, _TABLE_EXISTS,
                         {"schema": table.schema, "name": table.name}) != "0"
        if not exists:
            run_sql(self.clients, self.target, 'CREATE SCHEMA IF NOT EXISTS :"schema";',
                    {"schema": table.schema})
            names = [table.name, *entry.get("sequences", [])]
            self._pg_restore(["--section=pre-data", f"--schema={table.schema}",
                              *(f"--table={name}" for name in names)])
        self._rows(table, entry, truncate=exists)

    def _pg_restore(self, options: list[str]) -> None:
        argv = [self.clients.pg_restore, "--no-password", "--exit-on-error", *options,
                "--dbname", conninfo(self.target)]
        feed_input(argv, self.target, "the database schema", self.reader.read(SCHEMA_ITEM))

    def _rows(self, table: TableRef, entry: dict[str, Any], truncate: bool) -> None:
        argv = [self.clients.psql, "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1",
                "--single-transaction", "--dbname", conninfo(self.target), "-f", "-"]
        head, tail = b"", b""
        if self.restrict:
            # The stored dump had pg_dump's \restrict lines removed (they change every
            # time); a fresh key restores the protection against meta-commands.
            key = secrets.token_hex(16)
            head, tail = f"\\restrict {key}\n".encode(), f"\\unrestrict {key}\n".encode()
        if truncate:
            head += f"TRUNCATE ONLY {_ident(table.schema)}.{_ident(table.name)};\n".encode()
        feed_input(argv, self.target, f"table {table.qualified}",
                   _framed(head, self.reader.read(entry["item"]), tail))


def _framed(head: bytes, body: Iterable[bytes], tail: bytes) -> Iterator[bytes]:
    yield head
    yield from body
    yield tail


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
