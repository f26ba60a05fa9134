"""Reading a MongoDB database back for comparison: raw documents, indexes, options."""

from __future__ import annotations

from typing import Any

from bson import SON
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

RAW = CodecOptions(document_class=RawBSONDocument)


def raw_documents(client: MongoClient[Any], database: str, name: str) -> list[bytes]:
    """Every document's BSON bytes, in `_id` order: equal lists mean type-exact equality."""
    collection = client[database].get_collection(name, codec_options=RAW)
    return [doc.raw for doc in collection.find({}, sort=[("_id", 1)])]


def _plain(value: Any) -> Any:
    if isinstance(value, SON | dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def index_specs(client: MongoClient[Any], database: str, name: str) -> dict[str, Any]:
    """Index name -> its spec (key as an ordered list, options as a dict): compared as a
    set, since servers list indexes in different orders."""
    out = {}
    for spec in client[database][name].list_indexes():
        fields = {k: _plain(v) for k, v in spec.items() if k not in ("ns", "key")}
        out[spec["name"]] = (list(spec["key"].items()), fields)
    return out


def collection_options(client: MongoClient[Any], database: str, name: str) -> dict[str, Any]:
    (info,) = client[database].list_collections(filter={"name": name})
    return {"type": info.get("type", "collection"), "options": _plain(info.get("options", {}))}
