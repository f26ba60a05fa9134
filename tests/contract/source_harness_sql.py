"""The SQL harnesses of the source contract: a SQLite file and a PostgreSQL database on
the session's server, each with two tables of varied types (a text key beside an integer
one) and an entity hierarchy: a note (an item) with its comments (reviews)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from source_harness import Data, EntityCase, Expected, Fields, HarnessContext, Live, typed

# --- SQLite ---------------------------------------------------------------------------------

SQLITE_SCHEMA = """
CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score REAL, views INTEGER,
                    body BLOB, day DATE, misc);
CREATE TABLE tags (name TEXT PRIMARY KEY, weight REAL);
CREATE TABLE comments (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES notes (id),
                       body TEXT, at TEXT);
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
SQLITE_COMMENTS = [(1, 1, "first on 1", "2024-01-01"), (2, 1, "second on 1 ✓", "2024-01-02"),
                   (3, 4, "on 4", None)]
SQLITE_KEYS = {"notes": "id", "tags": "name", "comments": "id"}
SQLITE_ENTITIES = EntityCase(
    levels=(("note", "notes", None), ("comment", "comments", "note")),
    parent_entity="note", parent_key=1, child_group="comments", child_field="note_id",
    child_keys=frozenset({1, 2}))


@dataclass
class LiveSqlite:
    path: Path
    entry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    entities: EntityCase | None = SQLITE_ENTITIES

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

    def lose_entity(self) -> None:
        conn = self._connect()
        try:
            conn.executescript("DELETE FROM comments WHERE note_id = 1; "
                               "DELETE FROM notes WHERE id = 1;")
        finally:
            conn.close()

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
        conn.executemany("INSERT INTO comments VALUES (?, ?, ?, ?)", SQLITE_COMMENTS)
    finally:
        conn.close()
    yield LiveSqlite(path, {"type": "sqlite", "name": "contract-sqlite", "path": str(path),
                            "entities": entity_config(SQLITE_ENTITIES)})


def entity_config(case: EntityCase) -> list[dict[str, Any]]:
    """The `[[sources.entities]]` entries of a two-level hierarchy."""
    (top, top_group, _), (child, child_group, _) = case.levels
    return [{"name": top, "collection": top_group},
            {"name": child, "collection": child_group, "parent": top,
             "key": case.child_field}]


# --- PostgreSQL -----------------------------------------------------------------------------

PG_SCHEMA = r"""
CREATE SCHEMA shop;
CREATE TABLE shop.items (
  id integer PRIMARY KEY, name text NOT NULL, price numeric(10, 2), ratio double precision,
  big bigint, data bytea, born date, seen timestamptz, tags text[], doc jsonb, active boolean);
CREATE TABLE public.tags (name text PRIMARY KEY, weight real);
CREATE TABLE shop.reviews (id integer PRIMARY KEY, item_id integer REFERENCES shop.items (id),
  body text, stars smallint);
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
INSERT INTO shop.reviews VALUES (1, 1, 'first on 1', 5), (2, 1, E'second\ton 1 ✓', NULL),
  (3, 4, NULL, 1);
"""
PG_TABLES = {"shop.items": "id", "public.tags": "name", "shop.reviews": "id"}
PG_ENTITIES = EntityCase(  # PostgreSQL keys are browsed as their COPY text
    levels=(("item", "shop.items", None), ("review", "shop.reviews", "item")),
    parent_entity="item", parent_key="1", child_group="shop.reviews", child_field="item_id",
    child_keys=frozenset({"1", "2"}))


@dataclass
class LivePostgres:
    server: Any  # pg_server.PgServer
    dbname: str
    entry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    entities: EntityCase | None = PG_ENTITIES

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

    def lose_entity(self) -> None:
        self.server.psql("DELETE FROM shop.reviews WHERE item_id = 1; "
                         "DELETE FROM shop.items WHERE id = 1;", db=self.dbname, user="app")

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
                 "password": {"env": "CONTRACT_PG_PASSWORD"},
                 "entities": entity_config(PG_ENTITIES)}
        yield LivePostgres(server, dbname, entry, {"CONTRACT_PG_PASSWORD": server.app_password})
    finally:
        for name in (dbname, f"{dbname}_copy"):
            server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
