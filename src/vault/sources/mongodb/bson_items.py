"""BSON as the MongoDB source stores it: documents as raw bytes, metadata as extended JSON.

A collection's item is its documents' BSON concatenated (what mongodump writes), so a
document is stored exactly as the server sent it, every type intact, and read back without
being re-encoded. Metadata (options, indexes) is canonical extended JSON, which keeps
types too ({"$numberLong": ...}) and stays readable with `vault cat`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import bson
from bson import SON, json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.json_util import JSONOptions
from bson.raw_bson import RawBSONDocument

__all__ = [
    "DECODE_OPTIONS",
    "RAW_OPTIONS",
    "decode_document",
    "dump_json",
    "iter_raw_documents",
    "load_json",
]

# Documents stay bytes from the server to the snapshot and back (nothing re-encoded).
RAW_OPTIONS: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)
# For reading fields (filters, entity keys, date ranges): any datetime decodes, even one
# outside Python's range, and field order is kept.
DECODE_OPTIONS: CodecOptions[SON[str, Any]] = CodecOptions(
    document_class=SON, tz_aware=True, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)
_JSON_OPTIONS = JSONOptions(json_mode=json_util.JSONMode.CANONICAL, document_class=SON,
                            tz_aware=True, datetime_conversion=DatetimeConversion.DATETIME_AUTO)
_LENGTH = struct.Struct("<i")
_MIN_DOCUMENT = 5  # int32 length + the terminating NUL


class CorruptBSON(ValueError):
    """A stored collection item does not hold whole BSON documents."""


def iter_raw_documents(stream: BinaryIO, where: str) -> Iterator[bytes]:
    """The documents of a stored collection item, one `bytes` each."""
    while True:
        head = stream.read(4)
        if not head:
            return
        if len(head) < 4:
            raise CorruptBSON(f"{where}: truncated document length")
        (length,) = _LENGTH.unpack(head)
        if length < _MIN_DOCUMENT:
            raise CorruptBSON(f"{where}: invalid document length {length}")
        body = stream.read(length - 4)
        if len(body) != length - 4 or body[-1:] != b"\x00":
            raise CorruptBSON(f"{where}: truncated document")
        yield head + body


def decode_document(raw: bytes) -> SON[str, Any]:
    return bson.decode(raw, DECODE_OPTIONS)


def dump_json(value: Any) -> bytes:
    """Canonical extended JSON, key order kept (an index's key order is its meaning)."""
    return (json_util.dumps(value, json_options=_JSON_OPTIONS, indent=1) + "\n").encode()


def load_json(data: bytes | str) -> Any:
    return json_util.loads(data, json_options=_JSON_OPTIONS)


def raw_documents(raws: Iterable[bytes]) -> list[RawBSONDocument]:
    return [RawBSONDocument(raw, RAW_OPTIONS) for raw in raws]


def plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """A SON (and the SONs inside it) as dicts, for comparing and for pydantic/JSON meta."""
    return {key: plain(item) if isinstance(item, Mapping) else item
            for key, item in value.items()}
