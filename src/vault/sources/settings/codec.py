"""Settings values <-> canonical JSON, type for type.

A settings snapshot is one JSON document with sorted keys, so two captures of unchanged
settings are the same bytes (they deduplicate) and a changed key is a one-line diff. JSON
alone would lose types the formats have: TOML dates and times, YAML timestamps, binary and
sets, infinite floats, mapping keys that are not strings. Those are written as small tagged
objects `{"$vault": "<tag>", ...}`; the redaction marker and sealed secrets use the same
form. A settings object that itself has a "$vault" key is wrapped, so nothing is ambiguous.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

__all__ = [
    "REDACTED",
    "Redacted",
    "Sealed",
    "canonical_bytes",
    "decode",
    "encode",
]

TAG = "$vault"


class Redacted:
    """A secret value left out of the backup. One instance, `REDACTED`."""

    _instance: Redacted | None = None

    def __new__(cls) -> Redacted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REDACTED"


REDACTED = Redacted()


@dataclass(frozen=True)
class Sealed:
    """A secret value encrypted by the repository's sealer: the sealed bytes of the value's
    own canonical encoding (so its type comes back too)."""

    data: bytes

    def __repr__(self) -> str:
        return f"Sealed({len(self.data)} bytes)"


def encode(value: Any) -> Any:
    """A settings value as JSON-compatible data (dicts, lists, str, int, float, bool, None)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {TAG: "float", "value": repr(value)}  # "inf", "-inf", "nan"
    if isinstance(value, dict):
        return _encode_mapping(value)
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    return _encode_scalar(value)


def _encode_mapping(value: dict[Any, Any]) -> dict[str, Any]:
    if all(isinstance(key, str) for key in value):
        encoded = {key: encode(item) for key, item in value.items()}
        return {TAG: "object", "value": encoded} if TAG in encoded else encoded
    entries = [[encode(key), encode(item)] for key, item in value.items()]
    entries.sort(key=lambda entry: canonical_bytes(entry[0]))
    return {TAG: "map", "entries": entries}


def _encode_scalar(value: Any) -> dict[str, Any]:
    # datetime before date: a datetime is a date.
    if isinstance(value, datetime):
        return {TAG: "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {TAG: "date", "value": value.isoformat()}
    if isinstance(value, time):
        return {TAG: "time", "value": value.isoformat()}
    if isinstance(value, bytes | bytearray):
        return {TAG: "bytes", "base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset):
        items = sorted((encode(item) for item in value), key=canonical_bytes)
        return {TAG: "set", "items": items}
    if isinstance(value, Redacted):
        return {TAG: "redacted"}
    if isinstance(value, Sealed):
        return {TAG: "sealed", "base64": base64.b64encode(value.data).decode("ascii")}
    raise TypeError(f"cannot store a settings value of type {type(value).__name__}")


def decode(data: Any) -> Any:
    """The inverse of `encode`: markers come back as `REDACTED` and `Sealed`."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(TAG)
    if tag is None:
        return {key: decode(item) for key, item in data.items()}
    return _decode_tagged(tag, data)


def _decode_tagged(tag: Any, data: dict[str, Any]) -> Any:
    if tag == "object":
        return {key: decode(item) for key, item in data["value"].items()}
    if tag == "map":
        return {_hashable(decode(key)): decode(item) for key, item in data["entries"]}
    if tag == "float":
        return float(data["value"])
    if tag == "datetime":
        return datetime.fromisoformat(data["value"])
    if tag == "date":
        return date.fromisoformat(data["value"])
    if tag == "time":
        return time.fromisoformat(data["value"])
    if tag == "bytes":
        return base64.b64decode(data["base64"])
    if tag == "set":
        return {_hashable(decode(item)) for item in data["items"]}
    if tag == "redacted":
        return REDACTED
    if tag == "sealed":
        return Sealed(base64.b64decode(data["base64"]))
    raise ValueError(f"unknown settings value tag {tag!r}")


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    return value


def canonical_bytes(data: Any) -> bytes:
    """Encoded data as canonical JSON: sorted keys, one key per line, UTF-8."""
    text = json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8") + b"\n"
