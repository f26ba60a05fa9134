"""The PostgreSQL source against a real server: capture, restore, and the ways it fails."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import APP_USER, PgServer, free_port, missing_binary, running_server

from vault.config.secrets import SecretRef
from vault.sources.base import CaptureContext, SourceRestoreRequest, capture_to_memory
from vault.sources.postgresql.source import PostgresSource
from vault.sources.postgresql.tools import (
    PgAuthFailed,
    PgClientNotFound,
    PgTarget,
    PgTargetNotEmpty,
    PgUnknownTable,
    PgUnreachable,
    PostgresError,
)
from vault.sources.registry import source_from_url

_names = itertools.count()

RICH_SCHEMA = r"""
CREATE SCHEMA shop;
CREATE SCHEMA audit;
CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE shop.customers (
  id bigserial PRIMARY KEY, name text NOT NULL, born date, balance numeric(12,2),
  mood shop.mood, tags text[], profile jsonb, photo bytea, created timestamptz,
  ip inet, uid uuid, ratio double precision, active boolean, span interval, pt point,
  small smallint, big bigint, ch char(3), money_ money, bits bit varying(8),
  doc xml, rng int4range, ts timestamp
);
CREATE TABLE shop.orders (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES shop.customers (id),
  total numeric NOT NULL, note text, doubled numeric GENERATED ALWAYS AS (total * 2) STORED
);
CREATE INDEX orders_by_customer ON shop.orders (customer_id);
CREATE TABLE audit.log (id serial PRIMARY KEY, at timestamp, payload json, "Weird Name" text);
CREATE TABLE public."odd/name.x" (k int PRIMARY KEY, v text);
CREATE TABLE public.empty_one (k int);
CREATE SEQUENCE shop.invoice_no START 1000;
SELECT nextval('shop.invoice_no') FROM generate_series(1, 3);
CREATE VIEW shop.big_customers AS SELECT id, name FROM shop.customers WHERE balance > 100;
CREATE MATERIALIZED VIEW shop.totals AS
  SELECT customer_id, sum(total) AS total FROM shop.orders GROUP BY customer_id;
CREATE FUNCTION shop.add_tax(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE
  AS $$ SELECT $1 * 1.2 $$;
CREATE FUNCTION audit.remember() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit.log (at, payload) VALUES (now(), row_to_json(NEW)); RETURN NEW; END $$;
CREATE TRIGGER orders_audit AFTER INSERT ON shop.orders
  FOR EACH ROW EXECUTE FUNCTION audit.remember();
INSERT INTO shop.customers (name, born, balance, mood, tags, profile, photo, created, ip, uid,
  ratio, active, span, pt, small, big, ch, money_, bits, doc, rng, ts)
SELECT 'name ' || g || E'\ttab\nnewline\\backslash ü€ ' || repeat('x', g % 7),
  date '2000-01-01' + g, g * 1.25, (ARRAY['sad','ok','happy'])[g % 3 + 1]::shop.mood,
  ARRAY['a' || g, NULL, 'q"uote'], jsonb_build_object('k', g, 'nested', jsonb_build_array(g, 'x')),
  decode(md5(g::text), 'hex'), timestamptz '2024-02-29 12:00:00+01' + g * interval '1 hour',
  ('10.0.' || g % 250 || '.1')::inet, md5(g::text)::uuid, g / 7.0, g % 2 = 0,
  g * interval '1 minute', point(g, -g), g % 30000, g * 1000000000::bigint, 'c' || g % 10,
  g * 1.5, (g % 256)::bit(8)::varbit, ('<a n="' || g || '"/>')::xml, int4range(g, g + 10),
  timestamp '1999-12-31 23:59:59.123456' + g * interval '1 second'
FROM generate_series(1, 2000) g;
INSERT INTO shop.customers (name) VALUES (E'\\.'), (E'line\n\\.\nafter'), ('');
INSERT INTO shop.orders (customer_id, total, note)
SELECT (g % 2000) + 1, g * 0.01, CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END
FROM generate_series(1, 5000) g;
INSERT INTO public."odd/name.x" VALUES (1, 'one'), (2, NULL);
REFRESH MATERIALIZED VIEW shop.totals;
SELECT lo_from_bytea(0, convert_to('hello large object', 'UTF8'));
SELECT lo_from_bytea(0, decode(repeat(md5('big'), 40000), 'hex'));
"""

TABLE_FINGERPRINT = """SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|'
ORDER BY t::text)), '-') FROM {table} t"""


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    missing = missing_binary()
    if missing is not None:
        pytest.skip(f"PostgreSQL server binary {missing} is not installed")
    with running_server() as running:
        yield running


@pytest.fixture
def dbname(server: PgServer) -> str:
    return server.create_database(f"db_{os.getpid()}_{next(_names)}")


def make_source(server: PgServer, dbname: str, tmp_path: Path, *,
                password: str | None = None, **options: object) -> PostgresSource:
    secret = tmp_path / f"pw-{next(_names)}"
    secret.write_text(password if password is not None else server.app_password)
    secret.chmod(0o600)
    target = PgTarget(host=server.host, port=server.port, dbname=dbname, user=APP_USER)
    return PostgresSource("pg", target, password_ref=SecretRef(file=secret),
                          **options)  # type: ignore[arg-type]


def fingerprints(server: PgServer, db: str) -> dict[str, str]:
    """Every user table's row count and md5 of its sorted rows, by qualified name."""
    tables = server.psql(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", db)
    return {table: server.psql(TABLE_FINGERPRINT.format(table=table), db)
            for table in tables.splitlines()}


def objects(server: PgServer, db: str) -> dict[str, str]:
    """Sequences' values, views', functions' and triggers' definitions, large objects."""
    queries = {
        "invoice_no": "SELECT last_value || ' ' || is_called FROM shop.invoice_no",
        "customers_seq": "SELECT last_value || ' ' || is_called FROM shop.customers_id_seq",
        "orders_identity": "SELECT last_value FROM shop.orders_id_seq",
        "view": "SELECT pg_get_viewdef('shop.big_customers'::regclass)",
        "view_rows": TABLE_FINGERPRINT.format(table="shop.big_customers"),
        "matview_rows": TABLE_FINGERPRINT.format(table="shop.totals"),
        "function": "SELECT pg_get_functiondef('shop.add_tax'::regproc)",
        "function_result": "SELECT shop.add_tax(10)",
        "trigger": "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'orders_audit'",
        "index": "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_by_customer'",
        "fk": "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
        "large_objects": "SELECT string_agg(oid || '=' || md5(lo_get(oid)), ',' ORDER BY oid)"
                         " FROM pg_largeobject_metadata",
        "enum": "SELECT enum_range(NULL::shop.mood)::text",
    }
    return {name: server.psql(sql, db) for name, sql in queries.items()}


def test_capture_and_restore_into_a_new_database_gives_back_every_row_and_object(
        server: PgServer, dbname: str, tmp_path: Path) -> None:
    server.psql(RICH_SCHEMA, dbname, user=APP_USER)
    source = make_source(server, dbname, tmp_path)
    before_rows, before_objects = fingerprints(server, dbname), objects(server, dbname)

    stored = capture_to_memory(source)

    assert stored.paths() == sorted([
        "database.pgdump", "tables/audit/log.sql", "tables/public/empty_one.sql",
        "tables/public/odd%2Fname.x.sql", "tables/shop/customers.sql", "tables/shop/orders.sql",
    ])
    meta = stored.meta
    counted = {f"{t['schema']}.{t['name']}": t["rows"] for t in meta["tables"]}
    assert counted == {"audit.log": 5000, "public.empty_one": 0, "public.odd/name.x": 2,
                       "shop.customers": 2003, "shop.orders": 5000}
    assert meta["server_version_num"] >= 150000 and meta["snapshot"]
    assert meta["large_objects"] == 2 and meta["database_size"] > 1_000_000
    assert server.app_password not in repr(meta) + repr(source.describe())

    result = source.restore(stored, SourceRestoreRequest(target=f"{dbname}_copy", mode="new"))

    assert result.details["database"] == f"{dbname}_copy"
    assert fingerprints(server, f"{dbname}_copy") == before_rows
    assert objects(server, f"{dbname}_copy") == before_objects


def test_the_capture_is_one_snapshot_even_when_the_database_changes_while_it_is_read(
        server: PgServer, dbname: str, tmp_path: Path) -> None:
    server.psql("CREATE TABLE a (k int); CREATE TABLE b (k int);"
                "INSERT INTO a SELECT generate_series(1, 100);"
                "INSERT INTO b SELECT generate_series(1, 100);", dbname, user=APP_USER)
    source = make_source(server, dbname, tmp_path)
    data: dict[str, bytes] = {}
    with source.capture(CaptureContext()) as capture:
        items = list(capture.items)
        with items[1].open() as stream:  # tables/public/a.sql
            data[items[1].path] = stream.read()
        server.psql("INSERT INTO b SELECT generate_series(101, 150); DELETE FROM a;"
                    "CREATE TABLE c (k int)", dbname, user=APP_USER)
        for item in items[2:]:
            with item.open() as stream:
                data[item.path] = stream.read()
        rows = {t["name"]: t["rows"] for t in capture.meta["tables"]}
    assert rows == {"a": 100, "b": 100}
    assert data["tables/public/b.sql"].count(b"\n150\n") == 0


def test_selective_restore_of_one_table_into_a_new_database(
        server: PgServer, dbname: str, tmp_path: Path) -> None:
    server.psql(RICH_SCHEMA, dbname, user=APP_USER)
    source = make_source(server, dbname, tmp_path)
    original = fingerprints(server, dbname)
    stored = capture_to_memory(source)

    result = source.restore(stored, SourceRestoreRequest(target=f"{dbname}_one",
                                                         only=("shop.customers",)))

    restored = fingerprints(server, f"{dbname}_one")
    assert restored["shop.customers"] == original["shop.customers"]
    assert {table: rows for table, rows in restored.items() if not rows.startswith("0:")} \
        == {"shop.customers": original["shop.customers"]}  # the other tables are empty
    assert server.psql("SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
                       f"{dbname}_one") == "0"
    assert result.details["tables"] == {"shop.customers": 2003}
    assert server.psql("SELECT last_value FROM shop.customers_id_seq", f"{dbname}_one") == \
        server.psql("SELECT last_value FROM shop.customers_id_seq", dbname)


def test_selective_replace_puts_one_tables_rows_back_and_leaves_the_others(
        server: PgServer, dbname: str, tmp_path: Path) -> None:
    server.psql(RICH_SCHEMA, dbname, user=APP_USER)
    source = make_source(server, dbname, tmp_path)
    original = fingerprints(server, dbname)
    stored = capture_to_memory(source)
    server.psql("UPDATE audit.log SET payload = '{}'; DELETE FROM audit.log WHERE id < 100;"
                "INSERT INTO public.\"odd/name.x\" VALUES (3, 'three')", dbname, user=APP_USER)
    changed = fingerprints(server, dbname)

    source.restore(stored, SourceRestoreRequest(only=("log",), mode="replace"))

    now = fingerprints(server, dbname)
    assert now["audit.log"] == original["audit.log"]
    odd = 'public."odd/name.x"'
    assert now[odd] == changed[odd] != original[odd]


def test_replace_restores_the_whole_database_in_place(
        server: PgServer, dbname: str, tmp_path: Path) -> None:
    server.psql(RICH_SCHEMA, dbname, user=APP_USER)
    source = make_source(server, dbname, tmp_path)
    before_rows, before_objects = fingerprints(server, dbname), objects(server, dbname)
    stored = capture_to_memory(source)
    server.psql("DELETE FROM shop.orders WHERE id % 3 = 0; UPDATE shop.customers SET name = 'x';"
                "SELECT setval('shop.invoice_no', 5); DROP VIEW shop.big_customers;"
                "SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata;", dbname, user=APP_USER)

    source.restore(stored, SourceRestoreRequest(mode="replace"))

    assert fingerprints(server, dbname) == before_rows
    assert objects(server, dbname) == before_objects


def test_mode_new_refuses_a_database_that_is_not_empty_and_changes_nothing(
        server: PgServer, dbname: str, tmp_path: Path) -> None:
    server.psql("CREATE TABLE t (k int); INSERT INTO t VALUES (1)", dbname, user=APP_USER)
    source = make_source(server, dbname, tmp_path)
    stored = capture_to_memory(source)
    server.psql("INSERT INTO t VALUES (2)", dbname, user=APP_USER)

    with pytest.raises(PgTargetNotEmpty, match=f"database '{dbname}' at 127.0.0.1:"):
        source.restore(stored, SourceRestoreRequest(mode="new"))
    with pytest.raises(PgUnknownTable, match="no table 'nope'"):
        source.restore(stored, SourceRestoreRequest(target=f"{dbname}_x", only=("nope",)))

    assert server.psql("SELECT string_agg(k::text, ',' ORDER BY k) FROM t", dbname) == "1,2"
    assert server.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{dbname}_x'") == "0"


def test_a_dump_that_fails_mid_stream_fails_the_capture(
        server: PgServer, dbname: str, tmp_path: Path) -> None:
    server.psql("CREATE TABLE big AS SELECT g AS k, repeat(md5(g::text), 8) AS v "
                "FROM generate_series(1, 120000) g", dbname, user=APP_USER)  # ~35 MB
    source = make_source(server, dbname, tmp_path)
    with source.capture(CaptureContext()) as capture:
        item = next(i for i in capture.items if i.path == "tables/public/big.sql")
        with item.open() as stream, pytest.raises(PostgresError) as failed:
            stream.read(1 << 20)
            server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{dbname}' AND query LIKE 'COPY%'")
            while stream.read(1 << 20):
                pass
    assert "pg_dump failed for table public.big at 127.0.0.1:" in str(failed.value)


def test_estimate_gives_the_database_and_table_sizes(
        server: PgServer, dbname: str, tmp_path: Path) -> None:
    server.psql("CREATE TABLE t AS SELECT generate_series(1, 10000) k; ANALYZE t",
                dbname, user=APP_USER)
    estimate = make_source(server, dbname, tmp_path).estimate()
    assert estimate.bytes is not None and estimate.bytes > 7_000_000
    assert estimate.items == 2
    assert estimate.details["tables"] == {"public.t": 10000}
    assert estimate.details["table_bytes"]["public.t"] > 300_000


# --- failures with a clear message ---------------------------------------------------------


def test_an_unreachable_server_is_a_one_line_error(tmp_path: Path,
                                                   server: PgServer) -> None:
    port = free_port()
    source = PostgresSource("pg", PgTarget("127.0.0.1", port, "db", APP_USER))
    with pytest.raises(PgUnreachable) as failed:
        capture_to_memory(source)
    assert str(failed.value) == f"cannot connect to PostgreSQL at 127.0.0.1:{port}: " \
                                "connection refused"


def test_a_wrong_password_is_an_authentication_error_without_the_password(
        server: PgServer, dbname: str, tmp_path: Path) -> None:
    source = make_source(server, dbname, tmp_path, password="not-the-Password-42")
    with pytest.raises(PgAuthFailed) as failed:
        capture_to_memory(source)
    assert str(failed.value) == (f"PostgreSQL at 127.0.0.1:{server.port} refused user app: "
                                 "password authentication failed")
    url = server.url(dbname, password="not-the-Password-42")
    with pytest.raises(PgAuthFailed) as from_url:
        source_from_url(url).estimate()  # type: ignore[union-attr]
    assert "not-the-Password-42" not in str(from_url.value)


def test_a_password_in_the_url_works_and_stays_out_of_describe(
        server: PgServer, dbname: str) -> None:
    server.psql("CREATE TABLE t (k int); INSERT INTO t VALUES (7)", dbname, user=APP_USER)
    source = source_from_url(server.url(dbname, password=server.app_password))
    assert isinstance(source, PostgresSource)
    assert server.app_password not in repr(source.describe())
    stored = capture_to_memory(source)
    assert stored.meta["tables"][0]["rows"] == 1


def test_a_missing_pg_dump_names_the_package_to_install(
        server: PgServer, dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = tmp_path / "nowhere" / "pg_dump"
    with pytest.raises(PgClientNotFound) as configured:
        capture_to_memory(make_source(server, dbname, tmp_path, pg_dump_path=str(nowhere)))
    assert str(configured.value) == (f"pg_dump not found at {nowhere}: install the "
                                     "postgresql-client package (apt-get install "
                                     "postgresql-client)")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PgClientNotFound) as on_path:
        capture_to_memory(make_source(server, dbname, tmp_path))
    assert str(on_path.value) == ("pg_dump not found: install the postgresql-client package "
                                  "(apt-get install postgresql-client)")
