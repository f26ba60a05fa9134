"""A MongoDB collection restored whole: its documents cannot be named by `_id`.

MongoDB keeps `_id` unique through the `_id` index, but a time-series collection has no
such index, so its documents may repeat an `_id` (and a collection from an old server
created without one may too). Such a collection is never refused: its documents are
paired by content in the plan (`vault.planning.restore_plan.plan_whole`), and the restore writes
it whole, as mongorestore --drop does: the target's collection is dropped, created again
with the snapshot's options, every stored document inserted, then its indexes built.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from vault.sources.mongodb.bson_items import RAW_OPTIONS
from vault.sources.mongodb.plan import fingerprint

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

__all__ = ["WholeCollection", "create_indexes", "read_whole", "repeated_id", "write_whole"]

T = TypeVar("T")
BATCH_DOCUMENTS = 1000
_BATCH_BYTES = 8 << 20


def repeated_id(side: str, id_text: str) -> str:
    """Why a collection is restored whole (`RestorePlan.whole`)."""
    return (f"the {side}'s documents repeat an _id ({id_text}): a collection without a "
            "unique _id index (a time-series collection)")


@dataclass
class WholeCollection:
    """Why a collection is restored whole, and both sides' documents as fingerprints:
    (fingerprint, size) of the snapshot's, the fingerprint of the target's."""

    why: str
    snapshot: list[tuple[str, int]] = field(default_factory=list)
    target: list[str] = field(default_factory=list)


def read_whole(why: str, stored: Iterable[bytes],
               collection: Collection[Any] | None) -> WholeCollection:
    """Both sides of a collection restored whole (`collection`: the target's, if any)."""
    whole = WholeCollection(why, [(fingerprint(raw), len(raw)) for raw in stored])
    if collection is not None:
        whole.target = [fingerprint(document.raw) for document in collection.find({})]
    return whole


def write_whole(database: Database[Any], name: str, exists: bool,
                metadata: dict[str, Any], stored: Iterable[bytes]) -> int:
    """The collection `name` made the snapshot's: dropped (when it `exists`), created with
    the stored options, filled with the stored documents as they are, then indexed.
    Returns the bytes written."""
    from bson.raw_bson import RawBSONDocument

    if exists:
        database.drop_collection(name)
    database.command({"create": name, **metadata.get("options", {})})
    collection = database.get_collection(name, codec_options=RAW_OPTIONS)
    written = 0
    for batch in in_batches((RawBSONDocument(raw, RAW_OPTIONS), len(raw)) for raw in stored):
        collection.insert_many([document for document, _ in batch], ordered=True,
                               bypass_document_validation=True)
        written += sum(size for _, size in batch)
    create_indexes(database, name, metadata.get("indexes", []))
    return written


def in_batches(operations: Iterable[tuple[T, int]]) -> Iterator[list[tuple[T, int]]]:
    """(operation, bytes) pairs in batches of at most BATCH_DOCUMENTS operations, cut
    once one holds _BATCH_BYTES: one round trip each, of bounded size."""
    batch: list[tuple[T, int]] = []
    batch_bytes = 0
    for operation, size in operations:
        batch.append((operation, size))
        batch_bytes += size
        if len(batch) >= BATCH_DOCUMENTS or batch_bytes >= _BATCH_BYTES:
            yield batch
            batch, batch_bytes = [], 0
    if batch:
        yield batch


def create_indexes(database: Database[Any], name: str, indexes: list[dict[str, Any]]) -> None:
    # After the documents, as mongorestore does: one build instead of one update per insert.
    specs = [{k: v for k, v in spec.items() if k != "ns"} for spec in indexes
             if spec.get("name") != "_id_"]
    if specs:
        database.command({"createIndexes": name, "indexes": specs})
