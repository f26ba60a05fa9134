"""What the source contract needs to know about each source type: how to set up a live
source holding a small known dataset, how to read its data back type for type, and how to
damage it (with what a restore plan must then say).

A harness yields a `Live`: the `[[sources]]` entry that configures vault for it, the
environment its secrets come from, `read()` (group -> record key -> the record, every
value tagged with its type, so 1, 1.0 and True never compare equal), `damage()`, which
deletes, changes and adds records and returns the `Expected` plan of a restore in mode
overwrite, and `elsewhere()`: a new target to restore a copy into (a `--target`
argument) and the `Live` that reads it. Then the browse side: `browse_view(data)`, the
records as the source type's browser must show them (vault.sources.browse: some show
less than the live database holds, e.g. PostgreSQL values as COPY text without their
types), and `browsed(group, key, fields)`, one browsed record in that shape. The SQL
and MongoDB harnesses are here; settings in source_harness_settings.py.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import bson
from bson import SON, Binary, Decimal128, Int64, ObjectId, json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from source_servers import SourceServers

#: group (table, collection, settings) -> record key -> the record, typed
Data = dict[str, dict[Any, Any]]
Fields = tuple[tuple[str, Any], ...]  # a browsed record's other fields (StoredRecord)
Planned = set[tuple[str, str]]  # (group, key) of planned items


@dataclass(frozen=True)
class Expected:
    """What a restore in mode overwrite must plan after `damage()`."""

    create: Planned = field(default_factory=set)
    overwrite: Planned = field(default_factory=set)
    delete: Planned = field(default_factory=set)


class Live(Protocol):
    entry: dict[str, Any]  # the [[sources]] entry
    env: dict[str, str]  # where the entry's secrets are read from

    def read(self) -> Data: ...

    def damage(self) -> Expected: ...

    def elsewhere(self) -> tuple[str, Live]: ...

    def browse_view(self, data: Data) -> Data: ...

    def browsed(self, group: str, key: Any, fields: Fields) -> Any: ...


@dataclass(frozen=True)
class HarnessContext:
    tmp_path: Path
    servers: SourceServers


@dataclass(frozen=True)
class Harness:
    #: the live source, its dataset loaded; it is removed when the context ends
    start: Callable[[HarnessContext], AbstractContextManager[Live]]
    #: items whose first bytes say when they were written (item -> how many bytes): two
    #: captures of unchanged data may differ there, and only there
    stamped: dict[str, int] = field(default_factory=dict)


def typed(value: Any) -> Any:
    """`value` with the type of every part beside it: equal results mean equal values
    of equal types all the way down."""
    if isinstance(value, dict):
        return ("dict", {key: typed(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(item) for item in value])
    return (type(value).__name__, value)


# --- SQLite ---------------------------------------------------------------------------------

SQLITE_SCHEMA = """
CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score REAL, views INTEGER,
                    body BLOB, day DATE, misc);
CREATE TABLE tags (name TEXT PRIMARY KEY, weight REAL);
"""
SQLITE_NOTES = [
    (1, "plain", 1.5, 10, b"\x00\x01\xff", "2024-02-29", 7),
    (2, "Grüße, 東京 ✓", -0.1, -(2**62), None, "1999-12-31", "text in an untyped column"),
    (3, "", None, 0, b"", None, 2.5),
    (4, "line\nbreak\ttab 'q' \"dq\"", 1e300, 2**63 - 1, bytes(range(256)), "2000-01-01",
     b"\x00blob"),
    (5, "null misc", 3.0, None, b"x", "2026-12-07", None),
]
SQLITE_TAGS = [("ü", 0.5), ("plain", 2.0), ("emoji 🙂", None)]
SQLITE_KEYS = {"notes": "id", "tags": "name"}


@dataclass
class LiveSqlite:
    path: Path
    entry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None)

    def read(self) -> Data:
        """Each row as (column, value) pairs: SQLite gives a value back in its storage
        class (INTEGER, REAL, TEXT, BLOB, NULL), which `typed` keeps."""
        conn = self._connect()
        try:
            found: Data = {}
            for table, key in SQLITE_KEYS.items():
                cursor = conn.execute(f"SELECT * FROM {table} ORDER BY {key}")
                columns = [column[0] for column in cursor.description]
                found[table] = {row[0]: typed(tuple(zip(columns, row, strict=True)))
                                for row in cursor}
            return found
        finally:
            conn.close()

    def elsewhere(self) -> tuple[str, Live]:
        copy = self.path.with_name("copy.db")
        return str(copy), LiveSqlite(copy)

    def browse_view(self, data: Data) -> Data:
        return data

    def browsed(self, group: str, key: Any, fields: Fields) -> Any:
        return typed(((SQLITE_KEYS[group], key), *fields))

    def damage(self) -> Expected:
        conn = self._connect()
        try:
            conn.executescript("""
                DELETE FROM notes WHERE id = 2;
                UPDATE notes SET title = 'changed', score = 9.5 WHERE id = 4;
                INSERT INTO notes VALUES (6, 'added after the backup', 0.0, 1, NULL, NULL, 1);
                DELETE FROM tags WHERE name = 'ü';
                UPDATE tags SET weight = 'heavy' WHERE name = 'plain';  -- REAL -> TEXT
            """)
        finally:
            conn.close()
        # SQLite names a text key as an SQL literal
        return Expected(create={("notes", "2"), ("tags", "'ü'")},
                        overwrite={("notes", "4"), ("tags", "'plain'")},
                        delete={("notes", "6")})


@contextmanager
def sqlite_live(ctx: HarnessContext) -> Iterator[Live]:
    path = ctx.tmp_path / "live" / "app.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SQLITE_SCHEMA)
        conn.executemany("INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?, ?)", SQLITE_NOTES)
        conn.executemany("INSERT INTO tags VALUES (?, ?)", SQLITE_TAGS)
    finally:
        conn.close()
    yield LiveSqlite(path, {"type": "sqlite", "name": "contract-sqlite", "path": str(path)})


# --- PostgreSQL -----------------------------------------------------------------------------

PG_SCHEMA = r"""
CREATE SCHEMA shop;
CREATE TABLE shop.items (
  id integer PRIMARY KEY, name text NOT NULL, price numeric(10, 2), ratio double precision,
  big bigint, data bytea, born date, seen timestamptz, tags text[], doc jsonb, active boolean);
CREATE TABLE public.tags (name text PRIMARY KEY, weight real);
INSERT INTO shop.items VALUES
  (1, 'plain', 9.99, 1.5, 10, '\x0001ff', '2024-02-29', '2024-02-29 12:00:00+01',
   ARRAY['a', 'b'], '{"k": 1, "nested": [1, "x", null]}', true),
  (2, 'Grüße, 東京 ✓', -0.01, -0.1, -4611686018427387904, NULL, '1999-12-31', NULL,
   ARRAY['ü', NULL], '[]', false),
  (3, '', NULL, NULL, 0, '\x', NULL, '2000-01-01 00:00:00.123456+00', '{}', NULL, NULL),
  (4, E'line\nbreak\ttab \\ backslash', 12345678.90, 1e300, 9223372036854775807,
   decode(repeat('00ff', 64), 'hex'), '0001-01-01', 'infinity', NULL, '{"deep": {"a": 2.5}}',
   true),
  (5, 'null doc', 0.00, 3.0, NULL, '\x78', '2026-12-07', '2026-12-07 23:59:59+00',
   ARRAY['x'], 'null', false);
INSERT INTO public.tags VALUES ('ü', 0.5), ('plain', 2.0), ('emoji 🙂', NULL);
"""
PG_TABLES = {"shop.items": "id", "public.tags": "name"}


@dataclass
class LivePostgres:
    server: Any  # pg_server.PgServer
    dbname: str
    entry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def _table(self, table: str, key: str) -> dict[Any, Any]:
        """Every row as [column, value as text, its type] per column. The text is the
        type's output function's (`format('%s')`, what COPY writes too; `::text` differs
        for booleans): exact for every type, floats included. NULL stays null."""
        schema, name = table.split(".")
        columns = self.server.psql(
            "SELECT string_agg(quote_ident(column_name), ',' ORDER BY ordinal_position) "
            f"FROM information_schema.columns WHERE table_schema = '{schema}' "
            f"AND table_name = '{name}'", db=self.dbname).split(",")
        cells = ", ".join(f"json_build_array('{c}', CASE WHEN {c} IS NOT NULL THEN "
                          f"format('%s', {c}) END, pg_typeof({c})::text)" for c in columns)
        rows = json.loads(self.server.psql(
            f"SELECT coalesce(json_agg(json_build_array({key}::text, {cells}) ORDER BY {key}),"
            f" '[]') FROM {table}", db=self.dbname))
        return {row[0]: tuple(tuple(cell) for cell in row[1:]) for row in rows}

    def read(self) -> Data:
        return {table: self._table(table, key) for table, key in PG_TABLES.items()}

    def elsewhere(self) -> tuple[str, Live]:
        return f"{self.dbname}_copy", LivePostgres(self.server, f"{self.dbname}_copy")

    def browse_view(self, data: Data) -> Data:
        """A stored row shows its values as COPY text (the types are in the schema item,
        which browsing does not read), the text `read()` holds."""
        return {table: {key: tuple((column, text) for column, text, _ in row)
                        for key, row in rows.items()} for table, rows in data.items()}

    def browsed(self, group: str, key: Any, fields: Fields) -> Any:
        return ((PG_TABLES[group], key), *fields)

    def damage(self) -> Expected:
        self.server.psql("""
            DELETE FROM shop.items WHERE id = 2;
            UPDATE shop.items SET name = 'changed', doc = '{"k": 2}' WHERE id = 4;
            INSERT INTO shop.items (id, name) VALUES (6, 'added after the backup');
            DELETE FROM public.tags WHERE name = 'ü';
            UPDATE public.tags SET weight = NULL WHERE name = 'plain';
        """, db=self.dbname, user="app")
        return Expected(create={("shop.items", "2"), ("public.tags", "ü")},
                        overwrite={("shop.items", "4"), ("public.tags", "plain")},
                        delete={("shop.items", "6")})


@contextmanager
def postgres_live(ctx: HarnessContext) -> Iterator[Live]:
    server = ctx.servers.postgres()
    dbname = server.create_database(f"contract_{uuid.uuid4().hex[:10]}")
    try:
        server.psql(PG_SCHEMA, db=dbname, user="app")
        entry = {"type": "postgresql", "name": "contract-pg", "host": server.host,
                 "port": server.port, "dbname": dbname, "user": "app",
                 "password": {"env": "CONTRACT_PG_PASSWORD"}}
        yield LivePostgres(server, dbname, entry, {"CONTRACT_PG_PASSWORD": server.app_password})
    finally:
        for name in (dbname, f"{dbname}_copy"):
            server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- MongoDB --------------------------------------------------------------------------------

MONGO_ITEMS: list[dict[str, Any]] = [
    {"_id": ObjectId("65e0a1b2c3d4e5f601020301"), "name": "plain", "n": 10, "big": Int64(2**40),
     "price": Decimal128("9.99"), "ratio": 1.5, "data": Binary(b"\x00\x01\xff"),
     "at": datetime(2024, 2, 29, 11, 0, tzinfo=UTC), "tags": ["a", "b"], "active": True},
    {"_id": ObjectId("65e0a1b2c3d4e5f601020302"), "name": "Grüße, 東京 ✓", "n": -1,
     "ratio": -0.1, "none": None, "nested": {"deep": {"list": [1, "two", 3.0, None]}}},
    {"_id": ObjectId("65e0a1b2c3d4e5f601020303"), "name": "", "data": Binary(b"", 0),
     "uuid": Binary(uuid.UUID("12345678-1234-5678-1234-567812345678").bytes, 4)},
    {"_id": ObjectId("65e0a1b2c3d4e5f601020304"), "name": "line\nbreak", "ratio": 1e300,
     "big": Int64(-(2**62)), "price": Decimal128("-0.01"), "empty": {}},
    {"_id": ObjectId("65e0a1b2c3d4e5f601020305"), "name": "dates",
     "at": datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "n": 0},
]
MONGO_PEOPLE: list[dict[str, Any]] = [
    {"_id": "ada", "born": datetime(1815, 12, 10, tzinfo=UTC), "langs": ["en", "fr"]},
    {"_id": "ü-person", "age": 3.0},
    {"_id": 7, "note": "an integer _id"},
]


@dataclass
class LiveMongo:
    server: Any  # mongo_server_fixture.MongoServer
    database: str
    entry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    #: the database its groups are named after (a copy's are named as the original's)
    label: str = ""

    def read(self) -> Data:
        """Every document's BSON bytes: equal bytes are equal values, type for type and
        field order too."""
        raw = CodecOptions(document_class=RawBSONDocument)
        found: Data = {}
        with self.server.client() as client:
            database = client.get_database(self.database, codec_options=raw)
            for name in ("items", "people"):
                found[f"{self.label or self.database}.{name}"] = {
                    repr(doc["_id"]): bytes(doc.raw)
                    for doc in database[name].find({}, sort=[("_id", 1)])}
        return found

    def damage(self) -> Expected:
        items, people = (f"{self.database}.{name}" for name in ("items", "people"))
        with self.server.client() as client:
            database = client[self.database]
            database["items"].delete_one({"_id": MONGO_ITEMS[1]["_id"]})
            database["items"].update_one({"_id": MONGO_ITEMS[3]["_id"]},
                                         {"$set": {"name": "changed", "ratio": 2}})
            database["items"].insert_one({"_id": ObjectId("65e0a1b2c3d4e5f6010203ff"),
                                          "name": "added after the backup"})
            database["people"].delete_one({"_id": "ü-person"})
            database["people"].update_one({"_id": 7}, {"$set": {"note": Int64(7)}})
        key = json_util.dumps  # a plan names an _id in extended JSON
        return Expected(
            create={(items, key(MONGO_ITEMS[1]["_id"])), (people, key("ü-person"))},
            overwrite={(items, key(MONGO_ITEMS[3]["_id"])), (people, key(7))},
            delete={(items, key(ObjectId("65e0a1b2c3d4e5f6010203ff")))})


    def elsewhere(self) -> tuple[str, Live]:
        copy = f"{self.database}copy"  # dropped with the test's databases
        return copy, LiveMongo(self.server, copy, label=self.database)

    def browse_view(self, data: Data) -> Data:
        """A browsed document is keyed by its `_id` (an ObjectId as its hex text) and
        shows its other fields, decoded, in stored order."""
        options = CodecOptions(document_class=SON, tz_aware=True)
        view: Data = {}
        for group, documents in data.items():
            view[group] = {}
            for raw in documents.values():
                document = bson.decode(raw, options)
                ident = document.pop("_id")
                key = str(ident) if isinstance(ident, ObjectId) else ident
                view[group][key] = typed(tuple(document.items()))
        return view

    def browsed(self, group: str, key: Any, fields: Fields) -> Any:
        return typed(fields)


@contextmanager
def mongo_live(ctx: HarnessContext) -> Iterator[Live]:
    server = ctx.servers.mongo()
    database = f"ct{uuid.uuid4().hex[:10]}"
    with server.client() as client:
        client[database]["items"].insert_many(MONGO_ITEMS)
        client[database]["people"].insert_many(MONGO_PEOPLE)
    try:
        yield LiveMongo(server, database, {"type": "mongodb", "name": "contract-mongo",
                                           "url": server.db_url(database)})
    finally:
        with server.client() as client:
            for name in client.list_database_names():
                if name.startswith(database):
                    client.drop_database(name)

