"""PostgreSQL: a database captured with pg_dump, streamed, one item per table.

A capture opens one psql session, starts a REPEATABLE READ transaction and exports its
snapshot (`pg_export_snapshot()`); every pg_dump of the capture joins that snapshot
(`--snapshot=`), so all items show the database at one instant, as one pg_dump would.

Items (see docs/sources.md (PostgreSQL) for why this shape deduplicates best):
- `database.pgdump`: custom-format archive (`-Fc -Z0`: the repository compresses) of
  everything but the tables' rows: schemas, types, functions, views, sequences and their
  values, large objects, indexes, constraints, triggers, grants.
- `tables/<schema>/<table>.sql`: the table's rows, plain `pg_dump --data-only` (a COPY
  block), read straight from pg_dump's stdout; nothing is written to disk.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from vault.config.secrets import Secret, SecretRef, resolve_secret
from vault.sources.base import Capture, PlannedRestore, SourceEstimate, SourceItem, stream_of
from vault.sources.entities import Entity, ordered
from vault.sources.postgresql import restore as postgresql_restore
from vault.sources.postgresql import tools
from vault.sources.postgresql.browse import BROWSER
from vault.sources.postgresql.client import PgClients, PsqlSession, find_clients, stream_output
from vault.sources.postgresql.rows_plan import python_codec
from vault.sources.postgresql.secrets import plan_tables, protect_stream, revealed
from vault.sources.postgresql.tools import SCHEMA_ITEM, CopyRowCounter, PgTarget, TableRef
from vault.sources.registry import register
from vault.sources.settings.errors import SealerMissing
from vault.sources.sqlite.secrets import SecretFields, secret_tables_from_config

if TYPE_CHECKING:
    from vault.sources.base import (
        CaptureContext,
        SourceRestoreRequest,
        SourceRestoreResult,
        StoredItems,
    )

FORMAT = 1

_BEGIN_SNAPSHOT = """BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SELECT pg_export_snapshot();"""

_DATABASE_SQL = """SELECT jsonb_build_object(
  'version_num', current_setting('server_version_num')::int,
  'version', current_setting('server_version'),
  'size', pg_database_size(d.oid),
  'encoding', pg_encoding_to_char(d.encoding),
  'large_objects', (SELECT count(*) FROM pg_largeobject_metadata))
FROM pg_database d WHERE d.datname = current_database();"""

# Ordinary tables outside the system schemas and not owned by an extension (pg_dump leaves
# those to CREATE EXTENSION). reltuples is the planner's estimate (-1: never analyzed).
_TABLES_SQL = r"""SELECT coalesce(jsonb_agg(jsonb_build_object(
  'schema', n.nspname, 'name', c.relname,
  'estimated_rows', greatest(c.reltuples, 0)::bigint,
  'bytes', pg_total_relation_size(c.oid),
  'sequences', (SELECT coalesce(jsonb_agg(s.relname ORDER BY s.relname), '[]')
                FROM pg_depend dep JOIN pg_class s ON s.oid = dep.objid
                WHERE dep.refobjid = c.oid AND dep.classid = 'pg_class'::regclass
                  AND s.relkind = 'S' AND s.relnamespace = c.relnamespace
                  AND dep.deptype IN ('a', 'i')),
  'key', (SELECT coalesce(jsonb_agg(a.attname ORDER BY k.ord), '[]')
          FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indrelid = c.oid AND i.indisprimary)
) ORDER BY n.nspname, c.relname), '[]')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                  AND e.objid = c.oid AND e.deptype = 'e');"""


class PostgresSource(PlannedRestore):
    """One PostgreSQL database, reached as `target`; the password, if any, comes from
    `password_ref` (resolved when needed), the URL, or the environment (PGPASSWORD,
    ~/.pgpass)."""

    type: ClassVar[str] = "postgresql"

    def __init__(self, name: str, target: PgTarget, *, password_ref: SecretRef | None = None,
                 tables: list[str] | None = None, pg_dump_path: str | None = None,
                 entities: tuple[Entity, ...] = (),
                 secret_fields: SecretFields | None = None,
                 secret_tables_optional: bool = False) -> None:
        self.name, self.entities, self.secret_fields = name, entities, secret_fields
        # An undo copy of a restore's target protects the named tables it has.
        self._secret_tables_optional = secret_tables_optional
        self._target = target
        self._password_ref = password_ref
        self._tables = list(tables or [])
        self._pg_dump_path = pg_dump_path

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": self.type, "name": self.name,
                                 "host": self._target.host, "port": self._target.port,
                                 "database": self._target.dbname}
        if self._target.user:
            found["user"] = self._target.user
        if self._tables:
            found["tables"] = list(self._tables)
        return found

    def target(self) -> PgTarget:
        """Where to connect, with the password read now (a secret command runs here)."""
        if self._password_ref is None:
            return self._target
        password = resolve_secret(self._password_ref, f"password of source {self.name!r}")
        return PgTarget(self._target.host, self._target.port, self._target.dbname,
                        self._target.user, Secret(password), self._target.options)

    def clients(self) -> PgClients:
        return find_clients(self._pg_dump_path)

    # --- estimate and capture -----------------------------------------------------------

    def estimate(self) -> SourceEstimate:
        with PsqlSession(self.clients(), self.target()) as session:
            database = session.json(_DATABASE_SQL)
            tables = self._chosen(session.json(_TABLES_SQL))
        return SourceEstimate(
            bytes=int(database["size"]),
            items=len(tables) + 1,
            details={"tables": {f"{t['schema']}.{t['name']}": t["estimated_rows"]
                                for t in tables},
                     "table_bytes": {f"{t['schema']}.{t['name']}": t["bytes"]
                                     for t in tables}},
        )

    @contextmanager
    def capture(self, context: CaptureContext) -> Iterator[Capture]:
        clients, target = self.clients(), self.target()
        with PsqlSession(clients, target) as session:
            # The point in time first, as soon as connected (a group takes its members'
            # together); what follows reads inside it.
            snapshot = session.text(_BEGIN_SNAPSHOT)
            taken_at = datetime.now(UTC)  # the exported snapshot: every pg_dump sees this
            database = session.json(_DATABASE_SQL)
            pg_dump_version = clients.check_pg_dump_for(database["version_num"], target.at)
            # Read inside the transaction: the table list is the snapshot's own.
            tables = self._chosen(session.json(_TABLES_SQL))
            dump = _Dumper(clients, target, snapshot, clients.supports_restrict_key())
            meta: dict[str, Any] = {
                "format": FORMAT, "database": target.dbname,
                "server_version": database["version"],
                "server_version_num": database["version_num"],
                "pg_dump_version": pg_dump_version, "encoding": database["encoding"],
                "database_size": database["size"], "snapshot": snapshot,
                "large_objects": database["large_objects"], "rows": "exact",
                "tables": [_table_meta(t) for t in tables],
            }
            if self.entities:
                meta["entities"] = [_entity_meta(session, e) for e in ordered(self.entities)]
            items = [SourceItem(SCHEMA_ITEM, stream_of(lambda: dump.schema(tables)))]
            items += [dump.table_item(entry) for entry in meta["tables"]]
            if self.secret_fields is not None and self.secret_fields.tables:
                items = self._protected(items, session, meta, context)
            yield Capture(items=items, meta=meta, taken_at=taken_at)

    def _protected(self, items: list[SourceItem], session: PsqlSession, meta: dict[str, Any],
                   context: CaptureContext) -> list[SourceItem]:
        """The secret tables' items rewritten as they stream (pg_secrets): secret fields
        redacted or sealed before a byte of them is stored."""
        fields = self.secret_fields
        assert fields is not None
        if fields.mode == "encrypt" and context.sealer is None:
            raise SealerMissing('secrets = "encrypt" needs the repository\'s secret sealer, '
                                "and the capture has none", name=self.name)
        plans = plan_tables(session.json, meta["tables"], fields,
                            only_present=self._secret_tables_optional)
        meta["secret_fields"] = {"mode": fields.mode, "tables": plans}
        by_item = {plan["item"]: plan for plan in plans}
        codec = python_codec(meta)

        def protected(item: SourceItem, plan: dict[str, Any]) -> SourceItem:
            def parts() -> Iterator[bytes]:
                with item.open() as stream:
                    raw = iter(lambda: stream.read(1 << 20), b"")
                    yield from protect_stream(raw, plan, fields, context.sealer, codec,
                                              self.name)
            return SourceItem(item.path, stream_of(parts), size_hint=item.size_hint)

        return [protected(i, by_item[i.path]) if i.path in by_item else i for i in items]

    def _chosen(self, tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self._tables:
            return tables
        refs = [TableRef(t["schema"], t["name"]) for t in tables]
        wanted = set(tools.select_tables(refs, self._tables))
        return [t for t, ref in zip(tables, refs, strict=True) if ref in wanted]

    # --- restore -------------------------------------------------------------------------

    def restore(self, stored: StoredItems, request: SourceRestoreRequest) -> SourceRestoreResult:
        clients, source = self.clients(), self.target()
        # Sealed secrets opened, redacted ones given the target's live values (pg_secrets),
        # read before the restore changes the target.
        with revealed(clients, tools.restore_target(source, request.target), stored,
                      request.sealer, self.name) as whole:
            return postgresql_restore.restore(clients, source, whole, request, self.entities)

    def for_target(self, request: SourceRestoreRequest,
                   stored: StoredItems | None = None) -> PostgresSource:
        """A source capturing what `request` would change in its target database (the
        tables it names, else all): what an undo snapshot before the restore captures.
        No password is read here; a target URL on the same server and user borrows this
        source's password reference, as the restore itself does."""
        tables = list(request.only) or list(self._tables)
        if request.target is None:
            found, password_ref = self._target, self._password_ref
        elif "://" not in request.target:
            found = tools.restore_target(self._target, request.target)
            password_ref = self._password_ref
        else:
            found = tools.parse_url(request.target)
            same_login = (found.host, found.port, found.user or self._target.user) == (
                self._target.host, self._target.port, self._target.user)
            password_ref = None
            if found.password is None and same_login:
                found = PgTarget(found.host, found.port, found.dbname,
                                 found.user or self._target.user, self._target.password,
                                 found.options)
                password_ref = self._password_ref
        return PostgresSource(f"{self.name}@{found.dbname}", found, password_ref=password_ref,
                              tables=tables, pg_dump_path=self._pg_dump_path,
                              secret_fields=self.secret_fields, secret_tables_optional=True)


def _entity_meta(session: PsqlSession, entity: Entity) -> dict[str, Any]:
    """Rows and date range of one entity's table, read in the capture's snapshot."""
    table = ".".join(_quote_ident(part) for part in entity.collection.split(".", 1))
    dates = "NULL, NULL"
    if entity.date_field:
        column = _quote_ident(entity.date_field)
        dates = f"min({column})::text, max({column})::text"
    found = session.json(f"SELECT jsonb_build_array(count(*), {dates}) FROM {table};")
    record: dict[str, Any] = {"name": entity.name, "collection": entity.collection,
                              "parent": entity.parent, "key": entity.key,
                              "date_field": entity.date_field, "documents": int(found[0])}
    if found[1] is not None:
        record |= {"first": found[1], "last": found[2]}
    return record


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_meta(table: dict[str, Any]) -> dict[str, Any]:
    return {"schema": table["schema"], "name": table["name"],
            "item": tools.table_item_path(table["schema"], table["name"]),
            "rows": None, "estimated_rows": table["estimated_rows"], "bytes": table["bytes"],
            "sequences": table["sequences"], "key": table["key"]}


class _Dumper:
    """The pg_dump commands of one capture, all joining its exported snapshot."""

    def __init__(self, clients: PgClients, target: PgTarget, snapshot: str,
                 restrict_key: bool) -> None:
        self.clients, self.target, self.snapshot = clients, target, snapshot
        # A key we chose is a key we can strip: see `drop_lines`.
        self.key = secrets.token_hex(16) if restrict_key else None

    def _argv(self, *options: str) -> list[str]:
        return [self.clients.pg_dump, "--no-password", f"--snapshot={self.snapshot}",
                *options, "--dbname", tools.conninfo(self.target)]

    def schema(self, tables: list[dict[str, Any]]) -> Iterator[bytes]:
        # Each table's rows are excluded by name, not with a wildcard: a wildcard would
        # also drop the sequences' values and the materialized views' contents.
        excluded = [f"--exclude-table-data={tools.dump_table_pattern(t['schema'], t['name'])}"
                    for t in tables]
        return stream_output(self._argv("--format=custom", "--compress=0", *excluded),
                             self.target, "the database schema")

    def table_item(self, entry: dict[str, Any]) -> SourceItem:
        def parts() -> Iterator[bytes]:
            counter = CopyRowCounter()
            options = ["--format=plain", "--data-only",
                       f"--table={tools.dump_table_pattern(entry['schema'], entry['name'])}"]
            strip: tuple[bytes, ...] = ()
            if self.key is not None:
                options.append(f"--restrict-key={self.key}")
                strip = (f"\\restrict {self.key}\n".encode(),
                         f"\\unrestrict {self.key}\n".encode())
            what = f"table {entry['schema']}.{entry['name']}"
            dumped = stream_output(self._argv(*options), self.target, what)
            for part in tools.drop_lines(dumped, strip):
                counter.feed(part)
                yield part
            entry["rows"] = counter.rows  # the dump ended well: the count is exact

        return SourceItem(entry["item"], stream_of(parts), size_hint=entry["bytes"])


# --- registration ---------------------------------------------------------------------------


def from_config(entry: Any) -> PostgresSource:
    target = PgTarget(host=entry.host, port=entry.port, dbname=entry.dbname, user=entry.user)
    pg_dump_path = getattr(entry, "pg_dump_path", None)
    entities = tuple(Entity(e.name, e.collection, e.parent, e.key, e.date_field)
                     for e in getattr(entry, "entities", []))
    fields = SecretFields(secret_tables_from_config(getattr(entry, "secret_tables", [])),
                          getattr(entry, "secrets", "redact"),
                          tuple(getattr(entry, "secret_keys", ())))
    return PostgresSource(entry.name, target, password_ref=entry.password,
                          tables=list(entry.tables),
                          pg_dump_path=str(pg_dump_path) if pg_dump_path else None,
                          entities=entities, secret_fields=fields)


def from_url(url: str) -> PostgresSource:
    target = tools.parse_url(url)
    return PostgresSource(target.dbname, target)


register("postgresql", from_config=from_config, schemes=("postgresql", "postgres"),
         from_url=from_url, browser=BROWSER)
