"""`vault import` of `mongodump --archive` files and `pg_dump -Fc` files: the snapshot holds
what the source's own capture would, and restores through the source into a real server.

There is no `mongodump` binary in the test environment: `write_archive` below encodes
archives by the documented format (mongo-tools' archive spec: magic, header, prelude,
interleaved namespace segments, EOF headers with CRC-64-ECMA), with its own bit-by-bit
CRC, independent of vault's table-driven one. The pg_dump files are made by the real
pg_dump 15 against a server the tests start.
"""

from __future__ import annotations

import gzip
import os
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Binary, Decimal128, Int64, ObjectId, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources"))

from mongo_helpers import raw_documents
from mongo_server_fixture import MongoServer, mongo_db, mongo_server  # noqa: F401
from pg_server import PG_BIN, PgServer, missing_binary, running_server

from vault.sources.base import SourceRestoreRequest, capture_to_memory
from vault.sources.mongodb.mongodump import crc64_update, id_sort_key
from vault.sources.mongodb.source import from_url
from vault.sources.postgresql.source import PostgresSource
from vault.sources.postgresql.tools import PgTarget

VaultCLI = Any

# --- a mongodump archive encoder, by the format's specification ---------------------------


def crc64_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xC96C5795D7870F42 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def _i64(value: int) -> Int64:
    return Int64(value - (1 << 64) if value >= 1 << 63 else value)


def write_archive(path: Path, collections: list[tuple[str, str, dict[str, Any], list[bytes]]],
                  *, compress: bool = False, seed: int = 0) -> None:
    """A mongodump archive of (db, collection, metadata, raw documents): segments of a few
    documents each, interleaved across collections, each namespace ended by its EOF."""
    out = bytearray(struct.pack("<I", 0x8199E26D))
    out += bson.encode({"concurrent_collections": 4, "version": "0.1",
                        "server_version": "7.0.12", "tool_version": "100.9.4"})
    for database, name, metadata, docs in collections:
        out += bson.encode({"db": database, "collection": name,
                            "metadata": json_util.dumps(metadata,
                                                        json_options=CANONICAL_JSON_OPTIONS),
                            "size": sum(map(len, docs)), "type": metadata.get("type",
                                                                              "collection")})
    out += b"\xff\xff\xff\xff"
    rng = random.Random(seed)
    pending = {(db, name): list(docs) for db, name, _meta, docs in collections}
    crcs = {key: 0xFFFFFFFFFFFFFFFF ^ 0xFFFFFFFFFFFFFFFF for key in pending}
    data = {key: b"" for key in pending}
    while pending:
        key = rng.choice(sorted(pending))
        batch, pending[key] = pending[key][:3], pending[key][3:]
        if batch:
            out += bson.encode({"db": key[0], "collection": key[1], "EOF": False,
                                "CRC": Int64(0)})
            out += b"".join(batch) + b"\xff\xff\xff\xff"
            data[key] += b"".join(batch)
        if not pending[key]:
            del pending[key]
            crcs[key] = crc64_bitwise(data[key])
            out += bson.encode({"db": key[0], "collection": key[1], "EOF": True,
                                "CRC": _i64(crcs[key])})
            out += b"\xff\xff\xff\xff"
    path.write_bytes(gzip.compress(bytes(out)) if compress else bytes(out))


def test_crc64_is_go_crc64_ecma() -> None:
    assert crc64_update(0, b"123456789") == 0x995DC9BBDF1939FA
    data = os.urandom(1001)
    assert crc64_update(crc64_update(0, data[:333]), data[333:]) == crc64_bitwise(data)


def test_id_order_is_the_servers_type_order() -> None:
    ids = [ObjectId("0" * 23 + "1"), "b", "a", 2.5, Int64(2), -1, None, True,
           Binary(b"\x01", 0), {"x": 1}, Decimal128("3")]
    ordered = sorted(ids, key=id_sort_key)
    assert ordered == [None, -1, Int64(2), 2.5, Decimal128("3"), "a", "b", {"x": 1},
                       Binary(b"\x01", 0), ObjectId("0" * 23 + "1"), True]


# --- MongoDB ----------------------------------------------------------------------------


def _make_mongo_source(server: MongoServer, database: str) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(7)
    people = [{"_id": ObjectId(f"{n:024x}"), "email": f"p{n}@example.org", "n": Int64(n),
               "price": Decimal128(f"{n}.25"), "blob": Binary(bytes([n % 256]) * 3, 0),
               "tags": ["a", {"deep": [n, None]}], "ratio": n / 7}
              for n in range(1, 41)]
    counters = [{"_id": n, "value": n * n} for n in range(25)]
    with server.client() as client:
        client[database]["people"].insert_many(people)
        client[database]["people"].create_index("email", unique=True)
        client[database]["counters"].insert_many(counters)
    rng.shuffle(people)  # mongodump writes natural order; the import sorts by _id
    rng.shuffle(counters)
    return {"people": people, "counters": counters}


def _mongodump_metadata(server: MongoServer, database: str, name: str) -> dict[str, Any]:
    with server.client() as client:
        (info,) = client[database].list_collections(filter={"name": name})
        indexes = list(client[database][name].list_indexes())
    # mongodump's own key order and extra field (uuid); the import must not care
    return {"indexes": indexes, "uuid": "0123456789abcdef0123456789abcdef",
            "collectionName": name, "type": "collection",
            "options": dict(info.get("options", {}))}


def _import(vault_repo: VaultCLI, path: Path, *args: str) -> dict[str, Any]:
    result = vault_repo.json("import", path, *args)
    assert result.code == 0, result.last
    return result.summary


def _stored(open_repo: Any, snapshot_id: str) -> Any:
    from vault.restore.items import SnapshotItems

    repo = open_repo()
    (snapshot,) = [s for s in repo.snapshots() if s.id == snapshot_id]
    return SnapshotItems(repo, snapshot)


def _items(stored: Any) -> dict[str, bytes]:
    out = {}
    for path in stored.paths():
        with stored.open(path) as stream:
            out[path] = stream.read()
    return out


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_mongodump_archive_imports_as_the_capture_would_and_restores_exactly(
        vault_repo: VaultCLI, open_repo: Any, tmp_path: Path, mongo_server: MongoServer,  # noqa: F811
        mongo_db: str, compress: bool) -> None:  # noqa: F811
    source_db, target_db = f"{mongo_db}_src", f"{mongo_db}_dst"
    docs = _make_mongo_source(mongo_server, source_db)
    archive = tmp_path / ("dump.archive.gz" if compress else "dump.archive")
    system = {"_id": "featureCompatibilityVersion", "version": "7.0"}
    write_archive(archive, [
        (source_db, name, _mongodump_metadata(mongo_server, source_db, name),
         [bson.encode(d) for d in docs[name]]) for name in ("people", "counters")
    ] + [("admin", "system.version", {"indexes": [], "collectionName": "system.version"},
          [bson.encode(system)])], compress=compress)

    preview = vault_repo.json("import", archive, "--dry-run").summary["preview"]
    assert preview["format"] == "mongodump"
    assert preview["collections"] == {f"{source_db}.counters": 25, f"{source_db}.people": 40}
    assert preview["skipped"][0]["path"] == "admin.system.version"
    summary = _import(vault_repo, archive)

    stored = _stored(open_repo, summary["snapshot_id"])
    captured = capture_to_memory(from_url(mongo_server.db_url(source_db)))
    imported = _items(stored)
    # Exactly the capture's items, byte for byte: documents in _id order, metadata shape.
    assert imported == captured.data
    assert stored.snapshot.source["type"] == "mongodb"
    assert stored.meta["collections"] == captured.meta["collections"]

    source = from_url(mongo_server.db_url(source_db))
    result = source.restore(stored, SourceRestoreRequest(target=target_db, mode="new-target"))
    assert result.details["collections"] == {f"{target_db}.counters": 25,
                                             f"{target_db}.people": 40}
    with mongo_server.client() as client:
        for name in ("people", "counters"):
            assert raw_documents(client, target_db, name) == raw_documents(
                client, source_db, name)
        unique = {spec["name"]: spec.get("unique") for spec in
                  client[target_db]["people"].list_indexes()}
        assert unique == {"_id_": None, "email_1": True}

    # Through the CLI, with no [[sources]] entry: the target URL says which server.
    cli_db = f"{mongo_db}_cli"
    restored = vault_repo.json("restore", summary["snapshot_id"][:8],
                               "--target", mongo_server.db_url(cli_db))
    assert restored.code == 0, restored.last
    with mongo_server.client() as client:
        assert raw_documents(client, cli_db, "people") == raw_documents(
            client, source_db, "people")


def _valid_archive(path: Path) -> bytes:
    docs = [bson.encode({"_id": n, "text": "x" * 40}) for n in range(10)]
    write_archive(path, [("app", "notes", {"indexes": [], "collectionName": "notes"}, docs)])
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "no-eof", "no-id", "gzip-cut"])
def test_damaged_mongodump_archive_is_refused_with_one_line(
        vault_repo: VaultCLI, tmp_path: Path, damage: str) -> None:
    archive = tmp_path / "damaged.archive"
    data = bytearray(_valid_archive(archive))
    expected = "is damaged"
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        spot = data.index(b"x" * 40) + 5
        data[spot] ^= 0x01  # still valid BSON: only the CRC catches it
        expected = "checksum of app.notes does not match"
    elif damage == "no-eof":
        eof = data.rindex(b"\x08EOF\x00\x01")  # the EOF header's `EOF: true`
        data = data[: data.rindex(b"\xff\xff\xff\xff", 0, eof) + 4]
        expected = "app.notes has no end marker"
    elif damage == "no-id":
        write_archive(archive, [("app", "notes", {"indexes": []},
                                 [bson.encode({"text": "no id"})])])
        data = bytearray(archive.read_bytes())
        expected = "has no _id"
    else:
        data = bytearray(gzip.compress(bytes(data))[:-30])
    archive.write_bytes(bytes(data))

    result = vault_repo.json("import", archive)
    assert result.code == 1, result.last
    message = result.last["message"]
    assert expected in message and "\n" not in message, message
    snapshots = vault_repo.query("snapshots").summary
    assert not snapshots.get("snapshots"), snapshots


# --- PostgreSQL -------------------------------------------------------------------------

TABLE_FINGERPRINT = """SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|'
ORDER BY t::text)), '-') FROM {table} t"""

_SCHEMA = r"""
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id serial PRIMARY KEY, name text NOT NULL, note text,
  photo bytea, balance numeric(12,2), joined timestamptz, prefs jsonb, tags text[]);
CREATE TABLE shop.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer int REFERENCES shop.customers(id), total numeric);
CREATE TABLE public."Odd ""q"" name" (a int, b text);
INSERT INTO shop.customers (name, note, photo, balance, joined, prefs, tags)
SELECT 'c' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE E'tab\there\nline ✓ ' || g END,
  decode(md5(g::text), 'hex'), g * 1.5, '2024-01-01 00:00+00'::timestamptz + g * interval '1h',
  jsonb_build_object('g', g, 'even', g % 2 = 0), ARRAY['x' || g, NULL]
FROM generate_series(1, 300) g;
INSERT INTO shop.orders (customer, total) SELECT 1 + g % 300, g / 7.0
FROM generate_series(1, 500) g;
INSERT INTO public."Odd ""q"" name" VALUES (1, E'back\\slash'), (1, E'back\\slash'), (NULL, '');
CREATE MATERIALIZED VIEW shop.totals AS SELECT customer, sum(total) s FROM shop.orders
GROUP BY customer;
SELECT lo_from_bytea(0, '\x00ff10'::bytea);
"""


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    missing = missing_binary()
    if missing is not None:
        pytest.skip(f"PostgreSQL server binary {missing} is not installed")
    with running_server() as running:
        yield running


def _fingerprints(server: PgServer, db: str) -> dict[str, str]:
    tables = server.psql(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", db)
    found = {table: server.psql(TABLE_FINGERPRINT.format(table=table), db)
             for table in tables.splitlines()}
    found["totals"] = server.psql(TABLE_FINGERPRINT.format(table="shop.totals"), db)
    found["sequences"] = server.psql(
        "SELECT string_agg(last_value::text, ',' ORDER BY 1) FROM pg_sequences", db)
    found["large_objects"] = server.psql(
        "SELECT string_agg(encode(lo_get(oid), 'hex'), ',') FROM pg_largeobject_metadata", db)
    return found


def _pg_dump(server: PgServer, db: str, out: Path) -> None:
    subprocess.run([str(PG_BIN / "pg_dump"), "--format=custom", "-h", str(server.socket_dir),
                    "-p", str(server.port), "-U", "postgres", "-f", str(out), db],
                   check=True, capture_output=True)


def _pg_source(server: PgServer, db: str) -> PostgresSource:
    return PostgresSource("pg", PgTarget(str(server.socket_dir), server.port, db, "postgres"))


def test_pg_dump_file_imports_and_restores_into_a_new_database_exactly(
        vault_repo: VaultCLI, open_repo: Any, tmp_path: Path, pg: PgServer) -> None:
    db = pg.create_database(f"imp_{os.getpid()}_{tmp_path.name[-12:].replace('-', '_')}")
    pg.psql(_SCHEMA, db)
    dump = tmp_path / "shop.dump"
    _pg_dump(pg, db, dump)

    preview = vault_repo.json("import", dump, "--dry-run").summary["preview"]
    assert preview["format"] == "pgdump" and preview["database"] == db
    assert sorted(preview["tables"]) == ['public.Odd "q" name', "shop.customers", "shop.orders"]
    summary = _import(vault_repo, dump)
    stored = _stored(open_repo, summary["snapshot_id"])
    assert stored.snapshot.source["type"] == "postgresql"
    assert sorted(stored.paths()) == sorted(["database.pgdump", "tables/shop/customers.sql",
                                             "tables/shop/orders.sql",
                                             'tables/public/Odd %22q%22 name.sql'])
    tables = {f"{t['schema']}.{t['name']}": t for t in stored.meta["tables"]}
    assert {k: (t["rows"], t["key"], t["sequences"]) for k, t in tables.items()} == {
        "shop.customers": (300, ["id"], ["customers_id_seq"]),
        "shop.orders": (500, ["id"], ["orders_id_seq"]),
        'public.Odd "q" name': (3, [], [])}

    target = f"{db}_restored"
    result = _pg_source(pg, db).restore(stored, SourceRestoreRequest(target=target,
                                                                     mode="new-target"))
    assert result.details["tables"] == {"shop.customers": 300, "shop.orders": 500,
                                        'public.Odd "q" name': 3}
    assert _fingerprints(pg, target) == _fingerprints(pg, db)


def test_pg_dump_import_restores_rows_in_overwrite_mode(
        vault_repo: VaultCLI, open_repo: Any, tmp_path: Path, pg: PgServer) -> None:
    db = pg.create_database(f"ovr_{os.getpid()}_{tmp_path.name[-12:].replace('-', '_')}")
    pg.psql(_SCHEMA, db)
    before = _fingerprints(pg, db)
    dump = tmp_path / "shop.dump"
    _pg_dump(pg, db, dump)
    stored = _stored(open_repo, _import(vault_repo, dump)["snapshot_id"])
    pg.psql("DELETE FROM shop.orders WHERE id <= 10; UPDATE shop.orders SET total = -1 "
            "WHERE id BETWEEN 11 AND 20; INSERT INTO shop.orders (customer, total) "
            "VALUES (1, 99)", db)

    request = SourceRestoreRequest(mode="overwrite", on_conflict="overwrite",
                                   only=("shop.orders",))
    planned = _pg_source(pg, db).restore(stored, SourceRestoreRequest(
        **{**request.__dict__, "dry_run": True}))
    done = _pg_source(pg, db).restore(stored, request)
    assert planned.details["plan"]["totals"] == done.details["plan"]["totals"]
    assert done.details["plan"]["totals"]["create"] == 10
    assert done.details["plan"]["totals"]["overwrite"] == 10
    assert done.details["plan"]["totals"]["delete"] == 1
    after = _fingerprints(pg, db)
    assert after["shop.orders"] == before["shop.orders"]


@pytest.mark.parametrize("damage", ["truncated", "toc", "not-custom"])
def test_damaged_pg_dump_is_refused_with_one_line(
        vault_repo: VaultCLI, tmp_path: Path, pg: PgServer, damage: str) -> None:
    db = pg.create_database(f"dmg_{os.getpid()}_{tmp_path.name[-12:].replace('-', '_')}")
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); "
            "INSERT INTO t SELECT g, repeat('v', 50) FROM generate_series(1, 2000) g", db)
    dump = tmp_path / "t.dump"
    _pg_dump(pg, db, dump)
    data = bytearray(dump.read_bytes())
    expected = "is damaged"
    if damage == "truncated":
        data = data[: len(data) - 200]
    elif damage == "toc":
        spot = data.index(b"TABLE DATA") - 6  # inside the length before the desc string
        data[spot:spot + 4] = b"\xff\xff\xff\x7f"
    else:
        data[10] = 3  # the format byte: a tar-format archive's
        expected = "not of the custom format"
    dump.write_bytes(bytes(data))

    result = vault_repo.json("import", dump)
    assert result.code == 1, result.last
    message = result.last["message"]
    assert expected in message and "\n" not in message, message
    assert not vault_repo.query("snapshots").summary.get("snapshots")
