"""MongoDB secrets are spliced out of and back into raw BSON, never re-encoded: documents
holding every BSON type (also deprecated ones a decode/encode round trip would change,
and a repeated field name) come back byte for byte, sealed with a real repository key."""

from __future__ import annotations

import struct
from typing import Any

import bson
import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

from vault.config.source_parts import DEFAULT_SECRET_KEYS
from vault.sources.mongodb.secrets import protector, revealer
from vault.sources.sqlite.secrets import REDACTED_TEXT, SEALED_PREFIX


def _element(kind: int, name: str, value: bytes) -> bytes:
    return bytes([kind]) + name.encode() + b"\x00" + value


def _document(*elements: bytes) -> bytes:
    body = b"".join(elements) + b"\x00"
    return struct.pack("<i", len(body) + 4) + body


def _string(text: str) -> bytes:
    return struct.pack("<i", len(text) + 1) + text.encode() + b"\x00"


def _documents() -> list[bytes]:
    plain = bson.encode({
        "_id": ObjectId(), "d": 1.5, "i": 7, "l": Int64(1 << 40), "dec": Decimal128("0.10"),
        "re": Regex("^a", "i"), "code": Code("f()", {"x": 1}), "min": MinKey(), "max": MaxKey(),
        "ts": Timestamp(5, 6), "bin": Binary(b"\x01\x02", 4), "none": None,
        "nested": {"smtp": {"password": Code("p", {"s": 1}), "host": "h"},
                   "servers": [{"token": Binary(b"\x00secret", 0)}, {"auth_key": Int64(9)}]},
        "api_token": Decimal128("12.50")})
    deprecated = _document(
        _element(0x10, "_id", struct.pack("<i", 2)),
        _element(0x06, "undefined_secret", b""),          # undefined: decodes as None
        _element(0x0E, "symbol", _string("sym")),         # symbol: decodes as str
        _element(0x0C, "db_token", _string("ns") + bytes(range(12))),  # DBPointer
        _element(0x02, "dup", _string("one")), _element(0x02, "dup", _string("two")),
        _element(0x03, "inner", _document(_element(0x0E, "secret_sym", _string("s")))))
    return [plain, deprecated]


@pytest.mark.parametrize("mode", ["redact", "encrypt"])
def test_every_type_comes_back_byte_for_byte_or_as_the_marker(unlocked_repo: Any,
                                                               mode: str) -> None:
    from vault.operations.group_capture import sealer_for

    sealer = sealer_for(unlocked_repo)
    plan: dict[str, Any] = {"collection": "d.c", "key_field": None, "value_field": None,
                            "patterns": list(DEFAULT_SECRET_KEYS), "fields": 0}
    originals = _documents()
    stored = [protector(plan, mode, sealer, "chat")(raw) for raw in originals]
    # password, token, auth_key, api_token; undefined_secret (only a null is left as it
    # is), db_token, inner.secret_sym
    assert plan["fields"] == 7
    marker = REDACTED_TEXT if mode == "redact" else SEALED_PREFIX
    first = bson.decode(stored[0])
    assert first["nested"]["smtp"]["host"] == "h" and first["none"] is None
    assert str(first["nested"]["smtp"]["password"]).startswith(marker)
    assert str(first["nested"]["servers"][0]["token"]).startswith(marker)
    assert b"\x00secret" not in stored[0]
    revealed = [revealer(plan, None, sealer, "chat")(raw) for raw in stored]
    if mode == "encrypt":
        assert revealed == originals
    else:
        assert revealed == stored  # no live values: the markers stay


def test_redacted_values_take_the_live_documents_values_exactly() -> None:
    from vault.sources.mongodb.secrets import _identity, _Matcher, _secret_elements

    plan: dict[str, Any] = {"collection": "d.c", "key_field": None, "value_field": None,
                            "patterns": list(DEFAULT_SECRET_KEYS), "fields": 0}
    originals = _documents()
    stored = [protector(plan, "redact", None, "chat")(raw) for raw in originals]
    matcher = _Matcher(plan["patterns"])
    live = {_identity(raw, plan): _secret_elements(raw, plan, matcher) for raw in originals}
    assert [revealer(plan, live, None, "chat")(raw) for raw in stored] == originals
