"""Restoring a PostgreSQL capture row by row, by primary key, into tables that exist.

One psql session, one transaction. For each chosen table: its snapshot rows go into a
scratch TEMP table shaped like the target's columns (psql `COPY ... FROM stdin`, straight
from the stored item), the server computes (key, md5 of the row's text form) on both sides,
`vault.restore.plan.plan_items` decides per row, and the plan is carried out with DELETE,
UPDATE ... FROM, INSERT in that same transaction; a failure anywhere rolls everything
back, so the target is either restored as planned or untouched. A dry run plans and rolls
back. Modes "overwrite" and "merge" (see docs/sources.md, PostgreSQL, Restore).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from vault.restore.plan import PlannedItem, RestorePlan
from vault.sources.base import SourceRestoreRequest, SourceRestoreResult, StoredItems
from vault.sources.pg_client import PgClients, PsqlSession
from vault.sources.pg_rows import (
    CopyBlock,
    PgCannotRename,
    PgDuplicateKeys,
    PgNoPrimaryKey,
    PgRowConflicts,
    PgTableMissing,
    RowSides,
    RowTable,
    escape_copy_field,
    literal,
    parse_fingerprints,
    parse_pairs,
    qualified,
    table_order,
)
from vault.sources.pg_tools import PgTarget, TableRef

READ_SIZE = 1 << 20

_DESCRIBE = """SELECT jsonb_build_object(
  'key', coalesce((SELECT jsonb_agg(a.attname ORDER BY k.ord)
                   FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY
                     AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary), '[]'),
  'always', coalesce((SELECT jsonb_agg(a.attname) FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attidentity = 'a' AND a.attnum > 0
                        AND NOT a.attisdropped), '[]'))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = {schema} AND c.relname = {name} AND c.relkind IN ('r', 'p');"""

_SEQUENCE = "SELECT coalesce(pg_get_serial_sequence({table}, {column}), '');"

_REFERENCES = """SELECT coalesce(jsonb_agg(jsonb_build_array(cn.nspname || '.' || cc.relname,
                                                   pn.nspname || '.' || pc.relname)), '[]')
FROM pg_constraint con
JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE con.contype = 'f';"""


def restore_rows(clients: PgClients, target: PgTarget, stored: StoredItems,
                 request: SourceRestoreRequest, tables: list[TableRef],
                 entries: dict[TableRef, dict[str, Any]]) -> SourceRestoreResult:
    mode = request.plan_mode
    encoding = str(stored.meta.get("encoding", "UTF8"))
    run = _RowRun(stored)
    with PsqlSession(clients, target) as session:
        session.text("BEGIN;")
        row_tables: list[RowTable] = []
        sides = RowSides()
        for number, table in enumerate(tables):
            block = CopyBlock(run.read(entries[table]["item"]), table.qualified)
            row_table = _describe(session, table, block.columns(), number, mode, target)
            row_tables.append(row_table)
            session.text(row_table.create_scratch())
            session.text(f"SET client_encoding = {literal(encoding)};")
            session.feed([row_table.copy_in().encode() + b"\n", *block.rows()],
                         f"the rows of table {table.qualified}")
            session.text("SET client_encoding = 'UTF8';")
            theirs = parse_fingerprints(session.text(row_table.fingerprints(row_table.snap)))
            ours = parse_fingerprints(session.text(row_table.fingerprints(row_table.sql_name)))
            for key, md5, size in theirs:
                if not sides.add_snapshot(table.qualified, key, md5, size):
                    raise PgDuplicateKeys(table=table.qualified, key=key)
            for key, md5, _ in ours:
                sides.add_target(table.qualified, key, md5)
        plan = sides.plan(mode, request.on_conflict)
        _check(plan, row_tables)
        details: dict[str, Any] = {"database": target.dbname, "tables": plan.by_group(),
                                   "plan": plan.to_json(), "id_map": {}}
        if request.dry_run:
            session.text("ROLLBACK;")
            return SourceRestoreResult(items=0, bytes=0, details=details)
        details["id_map"] = _execute(session, plan, row_tables)
        session.text("COMMIT;")
    return SourceRestoreResult(items=len(run.read_paths), bytes=run.bytes, details=details)


def _describe(session: PsqlSession, table: TableRef, columns: list[str], number: int,
              mode: str, target: PgTarget) -> RowTable:
    found = session.text(_DESCRIBE.format(schema=literal(table.schema),
                                          name=literal(table.name)))
    if not found:
        raise PgTableMissing(table=table.qualified, database=target.dbname, mode=mode)
    described = json.loads(found)
    key = tuple(described["key"])
    if not key:
        raise PgNoPrimaryKey(table=table.qualified, mode=mode)
    sequence = None
    if len(key) == 1:
        sequence = session.text(_SEQUENCE.format(
            table=literal(qualified(table.schema, table.name)), column=literal(key[0]))) or None
    return RowTable(table.schema, table.name, tuple(columns), key, sequence,
                    tuple(described["always"]), number)


def _check(plan: RestorePlan, tables: list[RowTable]) -> None:
    """Refuse, before anything is written, what the plan cannot carry out."""
    conflicts = plan.conflicts
    if conflicts:
        groups = sorted({item.group for item in conflicts})
        where = ", ".join(f"{g}: {sum(1 for i in conflicts if i.group == g)}" for g in groups)
        raise PgRowConflicts(count=len(conflicts), where=where)
    renames = plan.of("rename")
    for table in tables:
        count = sum(1 for item in renames if item.group == table.qualified)
        if count and table.sequence is None:
            raise PgCannotRename(count=count, table=table.qualified)


def _execute(session: PsqlSession, plan: RestorePlan,
             tables: list[RowTable]) -> dict[str, dict[str, str]]:
    """Carry out `plan` in the session's open transaction; old -> new keys of renamed rows."""
    by_table: dict[str, list[PlannedItem]] = {t.qualified: [] for t in tables}
    for item in plan.items:
        if item.action in ("create", "overwrite", "rename", "delete"):
            by_table[item.group].append(item)
    for table in tables:
        if by_table[table.qualified]:
            session.feed(_plan_copy(table, by_table[table.qualified]),
                         f"the plan of table {table.qualified}")
    references = _references(session)
    order = table_order([t.qualified for t in tables], references)
    named = {t.qualified: t for t in tables}
    id_map: dict[str, dict[str, str]] = {}
    # Deletes first, children before parents: a row only in the target may be referenced
    # by another row only in the target, and its unique values may be taken by a new row.
    for name in reversed(order):
        if any(i.action == "delete" for i in by_table[name]):
            session.text(named[name].delete())
    for name in order:
        table, actions = named[name], {i.action for i in by_table[name]}
        update = table.update()
        if "overwrite" in actions and update is not None:
            session.text(update)
        if "create" in actions:
            session.text(table.insert())
            bump = table.bump_sequence()
            if bump is not None:
                session.text(bump)
        if "rename" in actions:
            id_map[name] = parse_pairs(session.text(table.insert_renamed()))
    return id_map


def _plan_copy(table: RowTable, items: list[PlannedItem]) -> Iterator[bytes]:
    yield table.copy_plan().encode() + b"\n"
    batch: list[str] = []
    for item in items:
        batch.append(f"{item.action}\t{escape_copy_field(item.key)}\n")
        if len(batch) >= 10_000:
            yield "".join(batch).encode()
            batch = []
    batch.append("\\.\n")
    yield "".join(batch).encode()


def _references(session: PsqlSession) -> list[tuple[str, str]]:
    return [(child, parent) for child, parent in session.json(_REFERENCES)]


class _RowRun:
    """What a per-row restore read from the snapshot."""

    def __init__(self, stored: StoredItems) -> None:
        self.stored = stored
        self.read_paths: set[str] = set()
        self.bytes = 0

    def read(self, path: str) -> Iterator[bytes]:
        self.read_paths.add(path)
        with self.stored.open(path) as stream:
            while part := stream.read(READ_SIZE):
                self.bytes += len(part)
                yield part
