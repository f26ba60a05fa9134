"""A MongoDB collection whose documents repeat an `_id` (a time-series collection has no
unique `_id` index) against a real server: never refused. Into a new database every
document comes back; into a live one (overwrite, merge) the collection is replaced whole
and the plan says so; only a selection of its documents by `_id` is refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Decimal128, Int64
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from mongo_server_fixture import MongoServer, mongo_db, mongo_server  # noqa: F401

from vault.sources.base import SourceRestoreRequest, capture_to_memory
from vault.sources.mongodb.restore import MongoRestoreRefused
from vault.sources.mongodb.source import from_url

T0 = dt.datetime(2024, 5, 1, 12, 0)
READINGS = [
    {"_id": 1, "t": T0, "m": "north", "v": Int64(1)},
    {"_id": 1, "t": T0 + dt.timedelta(hours=1), "m": "north", "v": 2.5},
    {"_id": 2, "t": T0 + dt.timedelta(hours=2), "m": "south", "v": Decimal128("3.10")},
]
WHY = ("the snapshot's documents repeat an _id (1): a collection without a unique _id "
       "index (a time-series collection)")


def documents(client: Any, database: str, name: str) -> list[bytes]:
    """Every document's BSON bytes (type-exact), duplicates kept, sorted."""
    collection = client[database].get_collection(
        name, codec_options=CodecOptions(document_class=RawBSONDocument))
    return sorted(doc.raw for doc in collection.find({}))


def make_database(client: Any, database: str) -> None:
    client[database].command({"create": "readings",
                              "timeseries": {"timeField": "t", "metaField": "m"}})
    client[database].readings.insert_many([dict(r) for r in READINGS])
    client[database].notes.insert_many([{"_id": i, "text": f"v{i}"} for i in range(3)])


def test_a_new_database_gets_every_document(mongo_server: MongoServer,  # noqa: F811
                                            mongo_db: str) -> None:  # noqa: F811
    database, fresh = f"{mongo_db}_app", f"{mongo_db}_new"
    with mongo_server.client() as client:
        make_database(client, database)
        source = from_url(mongo_server.db_url(database))
        stored = capture_to_memory(source)
        dry = source.restore(stored, SourceRestoreRequest(target=fresh, mode="new",
                                                          dry_run=True))
        assert dry.details["plan"]["whole"] == {f"{fresh}.readings": WHY}
        done = source.restore(stored, SourceRestoreRequest(target=fresh, mode="new"))
        assert done.details["plan"] == dry.details["plan"]
        for name in ("readings", "notes"):
            assert documents(client, fresh, name) == documents(client, database, name)
        assert len(documents(client, fresh, "readings")) == 3
        options = client[fresh].command("listCollections", filter={"name": "readings"})
        assert options["cursor"]["firstBatch"][0]["options"]["timeseries"]["timeField"] == "t"


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_a_live_database_has_the_collection_replaced_whole(
        mongo_server: MongoServer, mongo_db: str, mode: str) -> None:  # noqa: F811
    database = f"{mongo_db}_app"
    with mongo_server.client() as client:
        make_database(client, database)
        source = from_url(mongo_server.db_url(database))
        stored = capture_to_memory(source)
        want = {name: documents(client, database, name) for name in ("readings", "notes")}
        client[database].readings.insert_one({"_id": 9, "t": T0, "m": "east", "v": 0})
        client[database].notes.insert_one({"_id": 9, "text": "added since"})
        before = {name: documents(client, database, name) for name in ("readings", "notes")}

        dry = source.restore(stored, SourceRestoreRequest(mode=mode, dry_run=True))
        plan = dry.details["plan"]
        assert plan["whole"] == {f"{database}.readings": WHY}
        assert plan["groups"][f"{database}.readings"] == {"delete": 1, "skip": 3}
        assert {name: documents(client, database, name) for name in before} == before

        done = source.restore(stored, SourceRestoreRequest(mode=mode))
        assert done.details["plan"] == plan
        assert documents(client, database, "readings") == want["readings"]
        # the keyed collection still goes document by document: merge keeps its own
        notes = want["notes"] if mode == "overwrite" else before["notes"]
        assert documents(client, database, "notes") == notes


def test_only_a_selection_of_it_by_id_is_refused(mongo_server: MongoServer,  # noqa: F811
                                                 mongo_db: str) -> None:  # noqa: F811
    database = f"{mongo_db}_app"
    with mongo_server.client() as client:
        make_database(client, database)
        source = from_url(mongo_server.db_url(database))
        stored = capture_to_memory(source)
        before = documents(client, database, "readings")
        with pytest.raises(MongoRestoreRefused, match=(
                r"readings: the snapshot's documents repeat an _id \(1\).*, so its documents "
                r"cannot be picked out by _id; restore the whole collection")):
            source.restore(stored, SourceRestoreRequest(mode="merge", query={"ids": [1]},
                                                        only=("readings",)))
        assert documents(client, database, "readings") == before
