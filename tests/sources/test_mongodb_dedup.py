"""What a second capture of a 100k-document collection adds to the repository when 1% of
the documents changed, as an application changes them (recent ones updated, new ones
appended), and, for the record only, when the changes are scattered at random."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from mongo_server_fixture import MongoServer, mongo_db, mongo_server  # noqa: F401
from pymongo import UpdateOne

from conftest import NewBytes
from vault.sources.base import capture_to_memory
from vault.sources.mongodb.source import from_url

DOCUMENTS = 100_000


def fill(client: Any, database: str) -> None:
    rng = random.Random(7)
    client[database].messages.insert_many(
        [{"_id": i, "session_id": i // 50, "text": rng.randbytes(480).hex(), "n": i}
         for i in range(DOCUMENTS)], ordered=False)


@pytest.mark.slow
def test_one_percent_changed_stores_little_new_data(
        mongo_server: MongoServer, mongo_db: str, new_bytes: NewBytes) -> None:  # noqa: F811
    database = f"{mongo_db}_big"
    with mongo_server.client() as client:
        fill(client, database)
        source = from_url(mongo_server.db_url(database))
        before = capture_to_memory(source)
        total = sum(len(data) for data in before.data.values())

        changed = DOCUMENTS // 200  # 0.5% updated (a contiguous range) + 0.5% inserted
        start = DOCUMENTS * 3 // 4
        client[database].messages.update_many({"_id": {"$gte": start, "$lt": start + changed}},
                                              {"$set": {"text": os.urandom(30).hex()}})
        client[database].messages.insert_many(
            [{"_id": DOCUMENTS + i, "session_id": -1, "text": "new " * 20, "n": i}
             for i in range(changed)])
        after = capture_to_memory(source)
        contiguous = new_bytes(before, after)

        scattered_ids = random.Random(3).sample(range(DOCUMENTS), DOCUMENTS // 100)
        client[database].messages.bulk_write(
            [UpdateOne({"_id": i}, {"$set": {"n": -i}}) for i in scattered_ids])
        scattered = new_bytes(after, capture_to_memory(source))

    print(f"\n[{mongo_server.kind}] {DOCUMENTS} documents, {total / 2**20:.1f} MiB captured; "
          f"1% changed contiguously: {contiguous / 2**20:.2f} MiB new "
          f"({100 * contiguous / total:.1f}%); 1% scattered: {scattered / 2**20:.2f} MiB new "
          f"({100 * scattered / total:.1f}%)")
    assert contiguous < total / 10
