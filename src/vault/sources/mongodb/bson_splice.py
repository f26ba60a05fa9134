"""Rewriting single elements of a raw BSON document, every other byte kept as it is.

Decoding a document and encoding it again does not give its bytes back for every type
(undefined and symbol decode as None and str, a repeated field name loses one value), so
secrets are replaced and put back by splicing: the document is walked element by element,
a chosen element's value is swapped for other bytes, and only the lengths of the documents
that contain it are written anew.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from vault.sources.mongodb.bson_items import CorruptBSON

_INT32 = struct.Struct("<i")
STRING, DOCUMENT, ARRAY, NULL = 0x02, 0x03, 0x04, 0x0A
_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8,
          0x12: 8, 0x13: 16, 0x7F: 0, 0xFF: 0}
_LENGTH_PREFIXED = {0x03: 0, 0x04: 0, 0x0F: 0, 0x02: 4, 0x0D: 4, 0x0E: 4, 0x05: 5}

#: (type byte, value bytes) of one element
Element = tuple[int, bytes]
#: visit(type, name, dotted path, value bytes) -> a replacement element, or None
Visitor = Callable[[int, str, str, bytes], Element | None]


def _value_size(raw: bytes, kind: int, at: int) -> int:
    if kind in _FIXED:
        return _FIXED[kind]
    if kind in _LENGTH_PREFIXED:
        (length,) = _INT32.unpack_from(raw, at)
        return int(length) + _LENGTH_PREFIXED[kind]
    if kind == 0x0B:  # regex: two C strings
        first = raw.index(b"\x00", at)
        return raw.index(b"\x00", first + 1) + 1 - at
    if kind == 0x0C:  # DBPointer: a string and an ObjectId
        (length,) = _INT32.unpack_from(raw, at)
        return 4 + int(length) + 12
    raise CorruptBSON(f"unknown BSON element type {kind:#04x}")


def elements(raw: bytes, start: int = 0) -> Iterator[tuple[int, str, int, int]]:
    """(type, name, value start, value end) of each element of the document at `start`."""
    (length,) = _INT32.unpack_from(raw, start)
    at, end = start + 4, start + length - 1  # the last byte is the document's NUL
    while at < end:
        kind = raw[at]
        name_end = raw.index(b"\x00", at + 1)
        name = raw[at + 1:name_end].decode("utf-8", "surrogateescape")
        value = name_end + 1
        value_end = value + _value_size(raw, kind, value)
        if value_end > end:
            raise CorruptBSON("an element runs past the end of its document")
        yield kind, name, value, value_end
        at = value_end


def rewrite(raw: bytes, visit: Visitor, *, descend: bool = True, start: int = 0,
            path: str = "") -> bytes | None:
    """The document at `start` with every element `visit` replaces swapped (searched in
    embedded documents and arrays when `descend`); None when nothing changed."""
    (length,) = _INT32.unpack_from(raw, start)
    parts: list[bytes] = []
    last = start + 4
    for kind, name, value, value_end in elements(raw, start):
        dotted = f"{path}.{name}" if path else name
        replaced = visit(kind, name, dotted, raw[value:value_end])
        if replaced is None and descend and kind in (DOCUMENT, ARRAY):
            inner = rewrite(raw, visit, start=value, path=dotted)
            replaced = None if inner is None else (kind, inner)
        if replaced is None:
            continue
        name_start = raw.rindex(b"\x00", 0, value) - len(name.encode("utf-8",
                                                                     "surrogateescape"))
        parts += [raw[last:name_start - 1], bytes([replaced[0]]), raw[name_start:value],
                  replaced[1]]
        last = value_end
    if not parts:
        return None
    parts.append(raw[last:start + length])
    body = b"".join(parts)
    return _INT32.pack(len(body) + 4) + body


def string_value(text: str) -> bytes:
    data = text.encode()
    return _INT32.pack(len(data) + 1) + data + b"\x00"


def read_string(value: bytes) -> str:
    return value[4:-1].decode("utf-8", "replace")
