"""The MongoDB source against a real server: type-exact round trips, indexes and options,
filters, document-level restores, and errors that say what went wrong and hold no secret."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from bson import (
    SON,
    Binary,
    Code,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
)
from bson.dbref import DBRef
from mongo_helpers import collection_options, index_specs, raw_documents
from mongo_server_fixture import MongoServer, free_port, mongo_db, mongo_server  # noqa: F401
from pymongo import ASCENDING, DESCENDING, TEXT
from pymongo.errors import OperationFailure

from vault.errors import VaultError
from vault.sources.base import SourceRestoreRequest, capture_to_memory
from vault.sources.mongodb.client import MongoUnreachable
from vault.sources.mongodb.config import MongoSourceConfig
from vault.sources.mongodb.restore import MongoRestoreRefused, RestoreTargetNotEmpty
from vault.sources.mongodb.source import from_config, from_url
from vault.sources.registry import source_from_url

UTC = dt.UTC


def every_type(n: int) -> dict[str, Any]:
    """A document holding every BSON type a driver can write, varied by `n`."""
    return {
        "_id": ObjectId(f"{n:024x}"),
        "double": 1.5 + n,
        "nan_and_inf": [float("inf"), float("-inf")],
        "string": f"héllo {n} ✓",
        "document": {"nested": {"deeper": [1, {"x": n}]}},
        "array": [1, "two", 3.0, None, [4, [5]]],
        "binary_generic": Binary(b"\x00\x01" * n, 0),
        "binary_function": Binary(b"fn", 1),
        "binary_uuid": Binary(uuid.UUID(int=n).bytes, 4),
        "binary_md5": Binary(b"\x11" * 16, 5),
        "binary_user": Binary(b"user-defined", 128),
        "object_id": ObjectId(),
        "true": True,
        "false": False,
        "datetime": dt.datetime(2024, 1, 1, 12, 30, 15, 123000) + dt.timedelta(days=n),
        "null": None,
        "regex": Regex(r"^ab+c$", "im"),
        "code": Code("function () { return 1; }"),
        "code_with_scope": Code("function () { return x; }", {"x": n}),
        "int32": 7 + n,
        "timestamp": Timestamp(1_700_000_000 + n, 3),
        "int64": Int64(1 << 40),
        "int64_small": Int64(5),  # an int64 that fits an int32 stays an int64
        "decimal": Decimal128("1234.5600"),
        "min_key": MinKey(),
        "max_key": MaxKey(),
        "dbref": DBRef("others", n, "elsewhere"),
        "key order": SON([("z", 1), ("a", 2)]),
        "expires_at": dt.datetime(2999, 1, 1),
    }


def make_typed_database(server: MongoServer, database: str) -> list[str]:
    """A database with every BSON type and index kind; returns index kinds not supported."""
    unsupported = []
    with server.client() as client:
        db = client[database]
        db.create_collection("typed", validator={"$jsonSchema": {"bsonType": "object"}},
                             collation={"locale": "en", "strength": 2})
        db.typed.insert_many([every_type(n) for n in range(1, 51)])
        db.typed.create_index([("int32", ASCENDING)], unique=True, name="unique_int32")
        db.typed.create_index([("string", ASCENDING), ("double", DESCENDING)], name="compound")
        db.typed.create_index("expires_at", expireAfterSeconds=3600, name="ttl")
        db.typed.create_index("double", partialFilterExpression={"int32": {"$gt": 10}},
                              name="partial")
        db.typed.create_index("maybe", sparse=True, name="sparse")
        db.typed.create_index("string", collation={"locale": "fr"}, name="french")
        try:
            db.typed.create_index([("string", TEXT)], name="text", weights={"string": 3})
        except OperationFailure:
            unsupported.append("text")
        db.create_collection("capped", capped=True, size=65536, max=100)
        db.capped.insert_many([{"_id": i, "line": f"log {i}"} for i in range(20)])
        db.create_collection("empty")
    return unsupported


def test_every_bson_type_and_index_kind_round_trips_exactly(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    source_db, target_db = f"{mongo_db}_src", f"{mongo_db}_dst"
    unsupported = make_typed_database(mongo_server, source_db)
    source = from_url(mongo_server.db_url(source_db))

    stored = capture_to_memory(source)
    result = source.restore(stored, SourceRestoreRequest(target=target_db))

    assert stored.paths() == sorted(
        f"{source_db}/{name}{suffix}" for name in ("capped", "empty", "typed")
        for suffix in (".bson", ".metadata.json"))
    assert stored.meta["collections"][f"{source_db}.typed"]["documents"] == 50
    assert stored.meta["server"]["version"]
    assert result.details["collections"] == {f"{target_db}.typed": 50,
                                             f"{target_db}.capped": 20, f"{target_db}.empty": 0}
    with mongo_server.client() as client:
        for name in ("typed", "capped", "empty"):
            assert raw_documents(client, target_db, name) == raw_documents(client, source_db, name)
            assert index_specs(client, target_db, name) == index_specs(client, source_db, name)
            assert collection_options(client, target_db, name) == collection_options(
                client, source_db, name)
        assert len(index_specs(client, target_db, "typed")) == 8 - len(unsupported)
        assert collection_options(client, target_db, "capped")["options"]["capped"] is True
    print(f"\n[{mongo_server.kind}] index kinds the server refused: {unsupported or 'none'}")


def test_replace_restores_over_changed_data_and_new_refuses_without_writing(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    database = f"{mongo_db}_app"
    with mongo_server.client() as client:
        client[database].items.insert_many([{"_id": i, "v": Int64(i)} for i in range(100)])
        client[database].items.create_index("v", unique=True)
        original = raw_documents(client, database, "items")
        source = from_url(mongo_server.db_url(database))
        stored = capture_to_memory(source)
        renamed = {"$concat": ["changed-", {"$toString": "$_id"}]}
        client[database].items.update_many({"_id": {"$lt": 10}}, [{"$set": {"v": renamed}}])
        client[database].items.insert_one({"_id": 1000, "v": 0.5})
        changed = raw_documents(client, database, "items")

        with pytest.raises(RestoreTargetNotEmpty, match=rf"{database}\.items"):
            source.restore(stored, SourceRestoreRequest(mode="new"))
        assert raw_documents(client, database, "items") == changed

        source.restore(stored, SourceRestoreRequest(mode="replace"))
        assert raw_documents(client, database, "items") == original
        assert "v_1" in index_specs(client, database, "items")


def test_document_level_restore_by_ids_and_by_query(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    database = f"{mongo_db}_app"
    with mongo_server.client() as client:
        client[database].notes.insert_many(
            [{"_id": ObjectId(f"{i:024x}"), "n": i, "tag": ["a", "b"][i % 2]} for i in range(40)])
        client[database].other.insert_one({"_id": 1})
        source = from_url(mongo_server.db_url(database))
        stored = capture_to_memory(source)
        everything = raw_documents(client, database, "notes")

        picked = [f"{3:024x}", {"$oid": f"{7:024x}"}]
        source.restore(stored, SourceRestoreRequest(target=f"{mongo_db}_ids", only=("notes",),
                                                    query={"ids": picked}))
        assert raw_documents(client, f"{mongo_db}_ids", "notes") == [everything[3], everything[7]]
        assert client[f"{mongo_db}_ids"].list_collection_names() == ["notes"]

        query = {"filter": {"tag": "b", "n": {"$gte": 30}}}
        source.restore(stored, SourceRestoreRequest(target=mongo_server.db_url(f"{mongo_db}_q"),
                                                    only=(f"{database}.notes",), query=query))
        assert raw_documents(client, f"{mongo_db}_q", "notes") == everything[31::2]

        # Replace with a selection merges: those documents come back, the others stay.
        client[database].notes.update_many({}, {"$set": {"n": -1}})
        source.restore(stored, SourceRestoreRequest(mode="replace", only=("notes",),
                                                    query={"ids": [f"{5:024x}"]}))
        restored = raw_documents(client, database, "notes")
        assert restored[5] == everything[5]
        assert client[database].notes.count_documents({"n": -1}) == 39

        with pytest.raises(MongoRestoreRefused, match="not supported"):
            source.restore(stored, SourceRestoreRequest(
                target=f"{mongo_db}_x", query={"filter": {"n": {"$where": "1"}}}))
        with pytest.raises(MongoRestoreRefused, match="no stored collection matches"):
            source.restore(stored, SourceRestoreRequest(target=f"{mongo_db}_x", only=("nope",)))


def expected_ids(client: Any, database: str, name: str, query: dict[str, Any]) -> list[Any]:
    return [d["_id"] for d in client[database][name].find(query, sort=[("_id", 1)])]


def stored_ids(stored: Any, path: str) -> list[Any]:
    from bson import decode_all

    return [d["_id"] for d in decode_all(stored.data[path])] if path in stored.data else None


def make_filter_database(client: Any, database: str) -> None:
    start = dt.datetime(2024, 1, 1)
    client[database].messages.insert_many(
        [{"_id": i, "sent_at": start + dt.timedelta(days=i), "deleted": i % 5 == 0}
         for i in range(60)] + [{"_id": 100 + i, "undated": True} for i in range(3)])
    client[database].sessions.insert_many([{"_id": i, "open": i % 2 == 0} for i in range(10)])
    for name in ("logs_a", "logs_b", "audit"):
        client[database][name].insert_many([{"_id": i} for i in range(5)])


def test_filters_select_exactly_the_matching_documents(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    database = f"{mongo_db}_app"
    with mongo_server.client() as client:
        make_filter_database(client, database)
        config = MongoSourceConfig.model_validate({
            "type": "mongodb", "name": "chat", "url": mongo_server.url,
            "databases": [database], "exclude_collections": ["logs_*", f"{database}.audit"],
            "queries": {"messages": {"deleted": False}, "sessions": '{"open": true}'},
            "date_field": "sent_at", "since": "2024-01-11T00:00:00Z",
            "until": "2024-02-10T00:00:00",
        })
        stored = capture_to_memory(from_config(config))

        dated = {"sent_at": {"$gte": dt.datetime(2024, 1, 11), "$lt": dt.datetime(2024, 2, 10)}}
        assert stored_ids(stored, f"{database}/messages.bson") == expected_ids(
            client, database, "messages",
            {"deleted": False, "$or": [dated, {"sent_at": {"$exists": False}}]})
        assert stored_ids(stored, f"{database}/sessions.bson") == [0, 2, 4, 6, 8]
        assert {p.split("/")[1] for p in stored.paths()} == {
            "messages.bson", "messages.metadata.json", "sessions.bson", "sessions.metadata.json"}
        dates = stored.meta["collections"][f"{database}.messages"]["dates"]["sent_at"]
        assert dates["first"].startswith("2024-01-12") and dates["last"].startswith("2024-02-09")
        assert stored.meta["filters"]["since"] == "2024-01-11T00:00:00+00:00"

        query = json.dumps({"open": False})
        adhoc = source_from_url(mongo_server.db_url(
            database, collections="sessions,logs_*", exclude_collections="logs_b",
            **{"query.sessions": query}))
        stored = capture_to_memory(adhoc)
        assert stored_ids(stored, f"{database}/sessions.bson") == [1, 3, 5, 7, 9]
        assert stored_ids(stored, f"{database}/logs_a.bson") == [0, 1, 2, 3, 4]
        assert {p.split("/")[1].split(".")[0] for p in stored.paths()} == {"sessions", "logs_a"}


def test_estimate_counts_the_selected_collections(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    database = f"{mongo_db}_app"
    with mongo_server.client() as client:
        make_filter_database(client, database)
    estimate = from_url(mongo_server.db_url(database, collections="messages,sessions")).estimate()
    assert estimate.details["collections"][f"{database}.messages"]["documents"] == 63
    assert estimate.details["documents"] == 73
    assert estimate.items == 2
    assert estimate.bytes is not None and estimate.bytes > 0


def test_unreachable_server_is_one_clear_line_without_the_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-pa55"
    monkeypatch.setenv("VAULT_TEST_MONGO_PW", secret)
    port = free_port()
    config = MongoSourceConfig.model_validate({
        "type": "mongodb", "name": "chat",
        "url": f"mongodb://backup@127.0.0.1:{port}/chat?serverSelectionTimeoutMS=300",
        "password": {"env": "VAULT_TEST_MONGO_PW"},
    })
    source = from_config(config)
    with pytest.raises(MongoUnreachable) as raised:
        capture_to_memory(source)
    message = str(raised.value)
    assert isinstance(raised.value, VaultError)
    assert message == f"cannot connect to MongoDB at mongodb://127.0.0.1:{port}/chat: " \
                      "connection refused"
    assert secret not in message and "\n" not in message

    adhoc = from_url(f"mongodb://u:{secret}@127.0.0.1:{port}/chat?serverSelectionTimeoutMS=300")
    with pytest.raises(MongoUnreachable) as raised:
        adhoc.estimate()
    assert secret not in str(raised.value)
    assert secret not in json.dumps(adhoc.describe()) and secret not in adhoc.url
    assert adhoc.describe()["url"] == f"mongodb://127.0.0.1:{port}/chat"
