"""The MongoDB harness of the source contract: a database on the session's SecantusDB
server with documents of every common BSON type, `_id`s of three types (ObjectId, str,
int), and an entity hierarchy: an item with its reviews."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bson
from bson import SON, Binary, Decimal128, Int64, ObjectId, json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from source_harness import Data, EntityCase, Expected, Fields, HarnessContext, Live, typed

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
MONGO_REVIEWS: list[dict[str, Any]] = [
    {"_id": 1, "item_id": MONGO_ITEMS[0]["_id"], "body": "first on 1"},
    {"_id": 2, "item_id": MONGO_ITEMS[0]["_id"], "body": "second on 1 ✓", "stars": None},
    {"_id": 3, "item_id": MONGO_ITEMS[3]["_id"], "stars": Int64(1)},
]
COLLECTIONS = ("items", "people", "reviews")


def entity_case(database: str) -> EntityCase:
    return EntityCase(  # an ObjectId is browsed (and queried) as its hex text
        levels=(("item", f"{database}.items", None), ("review", f"{database}.reviews", "item")),
        parent_entity="item", parent_key=str(MONGO_ITEMS[0]["_id"]),
        child_group=f"{database}.reviews", child_field="item_id", child_keys=frozenset({1, 2}))


@dataclass
class LiveMongo:
    server: Any  # mongo_server_fixture.MongoServer
    database: str
    entry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    #: the database its groups are named after (a copy's are named as the original's)
    label: str = ""
    entities: EntityCase | None = None

    def read(self) -> Data:
        """Every document's BSON bytes: equal bytes are equal values, type for type and
        field order too."""
        raw = CodecOptions(document_class=RawBSONDocument)
        found: Data = {}
        with self.server.client() as client:
            database = client.get_database(self.database, codec_options=raw)
            for name in COLLECTIONS:
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

    def lose_entity(self) -> None:
        with self.server.client() as client:
            client[self.database]["reviews"].delete_many({"item_id": MONGO_ITEMS[0]["_id"]})
            client[self.database]["items"].delete_one({"_id": MONGO_ITEMS[0]["_id"]})

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
        client[database]["reviews"].insert_many(MONGO_REVIEWS)
    entities = [{"name": "item", "collection": "items"},
                {"name": "review", "collection": "reviews", "parent": "item", "key": "item_id"}]
    try:
        yield LiveMongo(server, database, {"type": "mongodb", "name": "contract-mongo",
                                           "url": server.db_url(database),
                                           "entities": entities},
                        entities=entity_case(database))
    finally:
        with server.client() as client:
            for name in client.list_database_names():
                if name.startswith(database):
                    client.drop_database(name)
