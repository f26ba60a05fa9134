"""Restoring a PostgreSQL capture row by row, by primary key, into tables that exist.

One psql session, one transaction. For each chosen table: its snapshot rows go into a
scratch TEMP table shaped like the target's columns (psql `COPY ... FROM stdin`, straight
from the stored item), the server computes (key, md5 of the row's text form) on both sides,
`vault.planning.restore_plan.plan_items` decides per row, and the plan is carried out with DELETE,
UPDATE ... FROM, INSERT in that same transaction; a failure anywhere rolls everything
back, so the target is either restored as planned or untouched. A dry run plans and rolls
back. Modes "overwrite" and "merge" (see docs/sources.md, PostgreSQL, Restore). A table
without a primary key has no rows to name: it is replaced whole in that same transaction
(DELETE, then every snapshot row), its rows paired by content in the plan
(`vault.planning.restore_plan.plan_whole`), which says so (`RestorePlan.whole`).

An entity restore (`restore_entity_rows`) loads only the selected rows (`pg_entities`
reads them from the snapshot) and compares them with the target's rows within the same
selection; as a new copy (`remap_ids`) it compares with nothing and inserts every row
under a new key from its table's sequence, parents first, each reference column
following its parent's new key (`pg_temp.vault_new_keys`, filled as the parents go in).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from vault.planning.restore_plan import Mode, PlannedItem, RestorePlan, TargetNotEmpty, plan_whole
from vault.sources.base import (
    CountingReader,
    SourceRestoreRequest,
    SourceRestoreResult,
    StoredItems,
)
from vault.sources.entities import (
    Entity,
    EntitySelection,
    check_renamed_columns,
    entity_selection_of,
    renamed_fields,
)
from vault.sources.postgresql.client import PgClients, PsqlSession
from vault.sources.postgresql.entities import (
    EntityScope,
    PgEntityInTarget,
    PgEntityTableUnfit,
    PgNewIdsRefused,
    entity_scope,
)
from vault.sources.postgresql.rows_plan import (
    CREATE_NEW_KEYS,
    NO_PRIMARY_KEY,
    CopyBlock,
    PgCannotRename,
    PgDuplicateKeys,
    PgRowConflicts,
    PgTableMissing,
    RowSides,
    RowTable,
    data_lines,
    escape_copy_field,
    literal,
    parse_fingerprints,
    parse_pairs,
    parse_whole_prints,
    python_codec,
    qualified,
    table_order,
)
from vault.sources.postgresql.tools import PgTarget, TableRef

READ_SIZE = 1 << 20

_DESCRIBE = """SELECT jsonb_build_object(
  'key', coalesce((SELECT jsonb_agg(a.attname ORDER BY k.ord)
                   FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY
                     AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary), '[]'),
  'always', coalesce((SELECT jsonb_agg(a.attname) FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attidentity = 'a' AND a.attnum > 0
                        AND NOT a.attisdropped), '[]'),
  'types', coalesce((SELECT jsonb_object_agg(a.attname, format_type(a.atttypid, a.atttypmod))
                     FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                       AND NOT a.attisdropped), '{{}}'))
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
    """Restore every row of the chosen tables (modes overwrite, merge)."""
    renamed_fields(request.rename, request.remap_ids, None, ())  # refused: no entity
    run = CountingReader(stored, READ_SIZE)
    loads = []
    for table in tables:
        block = CopyBlock(run.read(entries[table]["item"]), table.qualified)  # read lazily
        loads.append(_Load(table, block.columns, block.rows))
    return _restore(clients, target, stored, request, loads, run, None)


def restore_entity_rows(clients: PgClients, target: PgTarget, stored: StoredItems,
                        request: SourceRestoreRequest, entities: Sequence[Entity],
                        entries: dict[TableRef, dict[str, Any]]) -> SourceRestoreResult:
    """Restore the rows of the entity `request.query` selects and every row below them in
    `entities` (modes overwrite, merge, new-target into tables that exist); with
    `request.remap_ids` as a new copy under new keys whose references follow them. The
    selection is read from the snapshot before the target is connected to."""
    selection = entity_selection_of(request.query or {}, "PostgreSQL")
    run = CountingReader(stored, READ_SIZE)

    def read_block(table: TableRef) -> tuple[list[str], Iterator[bytes]]:
        block = CopyBlock(run.read(entries[table]["item"]), table.qualified)
        return block.columns(), data_lines(block.rows())

    recorded = {table: list(entry.get("key") or []) for table, entry in entries.items()}
    scope = entity_scope(entities, selection, list(entries), recorded, read_block,
                         python_codec(stored.meta))
    loads = [_Load(t.table, _const(scope.rows[t.table.qualified].columns),
                   scope.rows[t.table.qualified].copy_data) for t in scope.tables]
    renamed = _renamed(request, selection, entities, scope)
    return _restore(clients, target, stored, request, loads, run, scope, renamed)


def _renamed(request: SourceRestoreRequest, selection: EntitySelection,
             entities: Sequence[Entity], scope: EntityScope) -> dict[str, dict[str, str]]:
    """`--rename`: table -> {column: the value the copy's rows take}."""
    found = renamed_fields(request.rename, request.remap_ids, selection, entities)
    if found is None:
        return {}
    entity, fields = found
    [table] = [t for t in scope.tables if t.entity.name == entity.name]
    check_renamed_columns(table.table.qualified, fields,
                          scope.rows[table.table.qualified].columns, [table.key])
    return {table.table.qualified: fields}


@dataclass(frozen=True)
class _Load:
    """A table to restore: the snapshot's column names and rows (a COPY block's data,
    its end line included), each read when asked for."""

    table: TableRef
    columns: Callable[[], list[str]]
    rows: Callable[[], Iterable[bytes]]


def _const(columns: list[str]) -> Callable[[], list[str]]:
    return lambda: columns


def _restore(clients: PgClients, target: PgTarget, stored: StoredItems,
             request: SourceRestoreRequest, loads: list[_Load], run: CountingReader,
             scope: EntityScope | None,
             renamed: Mapping[str, Mapping[str, str]] | None = None) -> SourceRestoreResult:
    mode = request.plan_mode
    copies = scope.references() if scope is not None and request.remap_ids else None
    encoding = str(stored.meta.get("encoding", "UTF8"))
    with PsqlSession(clients, target) as session:
        session.text("BEGIN;")
        row_tables: dict[str, RowTable] = {}
        sides = RowSides()
        whole: dict[str, tuple[list[tuple[str, int]], list[str]]] = {}
        for number, load in enumerate(loads):
            table = load.table
            row_table = _describe(session, table, load.columns(), number, mode, target)
            row_tables[table.qualified] = row_table
            session.text(row_table.create_scratch())
            session.text(f"SET client_encoding = {literal(encoding)};")
            session.feed([row_table.copy_in().encode() + b"\n", *load.rows()],
                         f"the rows of table {table.qualified}")
            session.text("SET client_encoding = 'UTF8';")
            if row_table.whole:
                _refuse_in_scope(row_table, scope)
                whole[table.qualified] = _whole_sides(session, row_table)
                continue
            theirs = parse_fingerprints(session.text(row_table.fingerprints(row_table.snap)))
            if scope is None:
                ours = parse_fingerprints(session.text(
                    row_table.fingerprints(row_table.sql_name)))
            else:
                ours = _within_selection(session, row_table, scope, row_tables,
                                         new_copy=copies is not None)
            for key, md5, size in theirs:
                if not sides.add_snapshot(table.qualified, key, md5, size):
                    raise PgDuplicateKeys(table=table.qualified, key=key)
            for key, md5, _ in ours:
                sides.add_target(table.qualified, key, md5)
        plan = _plan(sides, mode, request, target)
        for name, (snapshot, target_prints) in whole.items():
            plan.items += plan_whole(name, snapshot, target_prints, mode=mode)
            plan.whole[name] = NO_PRIMARY_KEY
        _check(plan, list(row_tables.values()), new_copy=copies is not None)
        details: dict[str, Any] = {"database": target.dbname, "tables": plan.by_group(),
                                   "plan": plan.to_json(), "id_map": {}}
        if request.dry_run:
            session.text("ROLLBACK;")
            return SourceRestoreResult(items=0, bytes=0, details=details, plan=plan)
        details["id_map"] = _execute(session, plan, list(row_tables.values()), copies,
                                     renamed or {})
        session.text("COMMIT;")
    return SourceRestoreResult(items=len(run.paths), bytes=run.bytes, details=details,
                               plan=plan)


def _refuse_in_scope(table: RowTable, scope: EntityScope | None) -> None:
    """An entity's rows are picked out by key: one restore a table without a primary key
    is refused (a restore of the whole table takes it)."""
    if scope is None:
        return
    [entity] = [t for t in scope.tables if t.table.qualified == table.qualified]
    raise PgEntityTableUnfit(entity=entity.entity.name, table=table.qualified,
                             detail=f"{NO_PRIMARY_KEY}, so its rows cannot be picked out")


def _whole_sides(session: PsqlSession, table: RowTable
                 ) -> tuple[list[tuple[str, int]], list[str]]:
    """A table replaced whole: (md5, size) of the snapshot's rows, md5 of the target's."""
    theirs = parse_whole_prints(session.text(table.whole_prints(table.snap)))
    ours = parse_whole_prints(session.text(table.whole_prints(table.sql_name)))
    return theirs, [md5 for md5, _ in ours]


def _within_selection(session: PsqlSession, table: RowTable, scope: EntityScope,
                      placed: Mapping[str, RowTable], new_copy: bool) -> list[tuple[str, str, int]]:
    """The target's rows within an entity selection, as (key, md5, size): the rows the
    snapshot's selection names, and the rows whose reference column holds the key of a
    parent row within it on either side (a session the project gained since the
    snapshot). A new copy has none: every row goes in beside what is there."""
    [entity] = [t for t in scope.tables if t.table.qualified == table.qualified]
    if table.key != (entity.key,):
        raise PgEntityTableUnfit(entity=entity.entity.name, table=table.qualified, detail=(
            f"its primary key in the target is ({', '.join(table.key)}), in the snapshot "
            f"({entity.key})"))
    if new_copy:
        return []
    keys = scope.rows[table.qualified].keys
    session.text(table.create_selection())
    session.feed([table.copy_selection().encode() + b"\n",
                  "".join(escape_copy_field(key) + "\n" for key in keys).encode(),
                  b"\\.\n"], f"the selected keys of table {table.qualified}")
    if entity.parent is not None and entity.reference is not None:
        session.text(table.select_children(entity.reference,
                                           placed[entity.parent.qualified]))
    return parse_fingerprints(session.text(table.fingerprints(table.sql_name, selected=True)))


def _plan(sides: RowSides, mode: Mode, request: SourceRestoreRequest,
          target: PgTarget) -> RestorePlan:
    try:
        return sides.plan(mode, request.on_conflict)
    except TargetNotEmpty:
        counts: dict[str, int] = {}
        for key in sides.target:
            table = cast(tuple[str, str], key)[0]
            counts[table] = counts.get(table, 0) + 1
        raise PgEntityInTarget(database=target.dbname, count=len(sides.target),
                               where=", ".join(f"{t}: {n}" for t, n in counts.items())
                               ) from None


def _describe(session: PsqlSession, table: TableRef, columns: list[str], number: int,
              mode: str, target: PgTarget) -> RowTable:
    found = session.text(_DESCRIBE.format(schema=literal(table.schema),
                                          name=literal(table.name)))
    if not found:
        raise PgTableMissing(table=table.qualified, database=target.dbname, mode=mode)
    described = json.loads(found)
    key = tuple(described["key"])
    sequence = None
    if len(key) == 1:
        sequence = session.text(_SEQUENCE.format(
            table=literal(qualified(table.schema, table.name)), column=literal(key[0]))) or None
    types = described["types"]
    return RowTable(table.schema, table.name, tuple(columns), key, sequence,
                    tuple(described["always"]), number,
                    tuple(str(types.get(column, "")) for column in columns))


def _check(plan: RestorePlan, tables: list[RowTable], new_copy: bool = False) -> None:
    """Refuse, before anything is written, what the plan cannot carry out."""
    if new_copy:
        created = {item.group for item in plan.of("create")}
        for table in tables:
            if table.qualified in created and table.sequence is None:
                raise PgNewIdsRefused(table=table.qualified, key=", ".join(table.key))
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


def _execute(session: PsqlSession, plan: RestorePlan, tables: list[RowTable],
             copies: Mapping[str, Mapping[str, str]] | None = None,
             renamed: Mapping[str, Mapping[str, str]] | None = None,
             ) -> dict[str, dict[str, str]]:
    """Carry out `plan` in the session's open transaction; old -> new keys of renamed rows.
    With `copies` (a new copy: table -> {reference column -> the table it points into})
    every created row goes in under a new key, `tables` in their order (parents first),
    and its reference columns follow the new keys of the rows they point at; `renamed`
    (table -> column -> value) are columns a copy's rows take new values in."""
    by_table: dict[str, list[PlannedItem]] = {t.qualified: [] for t in tables}
    for item in plan.items:
        if item.action in ("create", "overwrite", "rename", "delete"):
            by_table[item.group].append(item)
    for table in tables:
        if by_table[table.qualified] and not table.whole:
            session.feed(_plan_copy(table, by_table[table.qualified]),
                         f"the plan of table {table.qualified}")
    if copies is None:
        order = table_order([t.qualified for t in tables], _references(session))
    else:  # a parent's new keys must be known before its children go in
        order = [t.qualified for t in tables]
        session.text(CREATE_NEW_KEYS)
    named = {t.qualified: t for t in tables}
    id_map: dict[str, dict[str, str]] = {}
    # Deletes first, children before parents: a row only in the target may be referenced
    # by another row only in the target, and its unique values may be taken by a new row.
    for name in reversed(order):
        if named[name].whole:
            session.text(named[name].delete_all())
        elif any(i.action == "delete" for i in by_table[name]):
            session.text(named[name].delete())
    for name in order:
        table, actions = named[name], {i.action for i in by_table[name]}
        if table.whole:
            session.text(table.insert_all())
            continue
        update = table.update()
        if "overwrite" in actions and update is not None:
            session.text(update)
        bump = table.bump_sequence()
        if "create" in actions and copies is not None:
            if bump is not None:  # a key inserted by hand must not be handed out again
                session.text(bump)
            id_map[name] = parse_pairs(session.text(table.insert_copied(
                copies.get(name, {}), (renamed or {}).get(name, {}))))
        elif "create" in actions:
            session.text(table.insert())
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
