"""On-disk formats: packs, index files, trees and key files read back what was written,
and refuse what was not."""

from __future__ import annotations

import json
import os

import pytest

from vault.repository.blob import FLAG_COMPRESSED, BlobEntry, BlobType
from vault.repository.crypto import Cipher, MasterKey, storage_id
from vault.repository.index import IndexFormatError, MasterIndex, decode_index, encode_index
from vault.repository.keys import (
    DEFAULT_SCRYPT_N,
    parse_key_file,
    unwrap_master_key,
    wrap_master_key,
)
from vault.repository.pack import (
    PackBuilder,
    PackFormatError,
    header_length,
    parse_header,
    read_pack_entries,
    trailer_size,
)
from vault.repository.tree import InvalidTree, Node, decode_tree, encode_tree, is_safe_name

KEY = MasterKey.generate()
CIPHER = Cipher(KEY)


def _pack(blobs: list[bytes]) -> tuple[str, bytes, list[BlobEntry]]:
    builder = PackBuilder(CIPHER)
    for i, data in enumerate(blobs):
        blob_id = CIPHER.blob_id(data)
        builder.add(blob_id, BlobType.TREE if i == 0 else BlobType.DATA,
                    CIPHER.seal(data, blob_id), len(data), FLAG_COMPRESSED if i == 1 else 0)
    return builder.finish()


# --- packs --------------------------------------------------------------------------------


def test_pack_round_trip() -> None:
    blobs = [b"tree", b"first blob" * 10, os.urandom(5000)]
    pack_id, data, entries = _pack(blobs)
    assert pack_id == storage_id(data)
    assert read_pack_entries(CIPHER, pack_id, data) == entries
    for entry, plain in zip(entries, blobs, strict=True):
        assert entry.raw_length == len(plain)
        sealed = data[entry.offset: entry.offset + entry.length]
        assert CIPHER.open(sealed, entry.blob_id) == plain
    assert [e.blob_type for e in entries] == [BlobType.TREE, BlobType.DATA, BlobType.DATA]
    assert [e.compressed for e in entries] == [False, True, False]

    # The header alone (read from the tail) gives the same entries.
    hlen = header_length(data[-trailer_size():])
    sealed_header = data[len(data) - trailer_size() - hlen: len(data) - trailer_size()]
    assert parse_header(CIPHER, pack_id, sealed_header) == entries


def test_builder_is_empty_after_finish() -> None:
    builder = PackBuilder(CIPHER)
    builder.add(b"\x01" * 32, BlobType.DATA, CIPHER.seal(b"x"), 1, 0)
    builder.finish()
    assert len(builder) == 0 and builder.size == 0


@pytest.mark.parametrize("damage", ["truncate", "header", "trailer", "extra-byte", "other-key"])
def test_damaged_packs_are_refused(damage: str) -> None:
    pack_id, data, _ = _pack([b"one", b"two" * 100])
    cipher = CIPHER
    if damage == "truncate":
        data = data[:2]
    elif damage == "header":
        data = data[:-10] + bytes([data[-10] ^ 1]) + data[-9:]
    elif damage == "trailer":
        data = data[:-4] + (len(data) * 2).to_bytes(4, "little")
    elif damage == "extra-byte":
        data = b"\x00" + data
    else:
        cipher = Cipher(MasterKey.generate())
    with pytest.raises(PackFormatError):
        read_pack_entries(cipher, pack_id, data)


# --- index files --------------------------------------------------------------------------


def test_index_round_trip_and_master_index() -> None:
    pack_a, data_a, entries_a = _pack([b"a1", b"a2"])
    pack_b, data_b, entries_b = _pack([b"b1", b"a2"])  # a2 again, in another pack
    sealed = encode_index(CIPHER, {pack_a: (len(data_a), entries_a),
                                   pack_b: (len(data_b), entries_b)})
    decoded = list(decode_index(CIPHER, sealed))
    assert decoded == [(pack_a, len(data_a), entries_a), (pack_b, len(data_b), entries_b)]

    index = MasterIndex()
    for pack_id, size, entries in decoded:
        index.add_pack(pack_id, size, entries)
    assert len(index) == 3
    assert index.get(CIPHER.blob_id(b"a2")) == entries_a[1]  # the first copy wins
    assert index.get(CIPHER.blob_id(b"b1")) == entries_b[0]
    assert index.get(b"\x00" * 32) is None
    assert index.has_pack(pack_b) and not index.has_pack("0" * 64)
    assert index.pack_sizes == {pack_a: len(data_a), pack_b: len(data_b)}
    assert sorted(e.blob_id for e in index.entries()) == sorted(
        {e.blob_id for e in entries_a + entries_b})


def test_damaged_index_is_refused() -> None:
    pack_id, data, entries = _pack([b"x"])
    sealed = bytearray(encode_index(CIPHER, {pack_id: (len(data), entries)}))
    sealed[20] ^= 1
    with pytest.raises(IndexFormatError):
        list(decode_index(CIPHER, bytes(sealed)))
    with pytest.raises(IndexFormatError):
        list(decode_index(Cipher(MasterKey.generate()), bytes(sealed)))


# --- trees --------------------------------------------------------------------------------

UNDECODABLE = os.fsdecode(b"caf\xe9")


def _nodes() -> list[Node]:
    return [
        Node(name="zeta.txt", type="file", mode=0o100640, mtime_ns=1_700_000_000_123_456_789,
             uid=1000, gid=1000, size=3, content=[b"\x01" * 32, b"\x02" * 32],
             hardlink_key="2049:1234"),
        Node(name="日本語 🎉", type="dir", mode=0o40750, mtime_ns=5, subtree=b"\x03" * 32),
        Node(name=UNDECODABLE, type="file", mode=0o100600, mtime_ns=6),
        Node(name="link", type="symlink", mode=0o120777, mtime_ns=7, link_target="../x y"),
    ]


def test_tree_round_trip_sorted_and_deterministic() -> None:
    nodes = _nodes()
    encoded = encode_tree(nodes)
    assert encoded == encode_tree(list(reversed(nodes)))  # same directory, same blob
    decoded = decode_tree(encoded)
    assert [n.name for n in decoded] == sorted(n.name for n in nodes)
    assert sorted(decoded, key=lambda n: n.name) == sorted(nodes, key=lambda n: n.name)
    assert os.fsencode(next(n.name for n in decoded if n.name.startswith("caf"))) == \
        b"caf\xe9"


@pytest.mark.parametrize("data", [
    b"not json", b"{}", b'{"nodes": [{"name": "x"}]}',
    b'{"nodes": [{"name": "x", "type": "fifo", "mode": 0, "mtime_ns": 0}]}',
    b'{"nodes": [{"name": "x", "type": "file", "mode": "rw", "mtime_ns": 0}]}',
])
def test_malformed_trees_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidTree):
        decode_tree(data)


def test_unsafe_names_still_decode_so_the_rest_survives() -> None:
    doc = {"nodes": [{"name": "../x", "type": "file", "mode": 0, "mtime_ns": 0},
                     {"name": "ok", "type": "file", "mode": 0, "mtime_ns": 0}]}
    assert [n.name for n in decode_tree(json.dumps(doc).encode())] == ["../x", "ok"]


@pytest.mark.parametrize("name, safe", [
    ("file", True), ("..file", True), ("a b", True), ("日本", True), (UNDECODABLE, True),
    ("", False), (".", False), ("..", False), ("a/b", False), ("/abs", False),
    ("../x", False), ("nul\x00", False), (None, False), (3, False),
])
def test_is_safe_name(name: object, safe: bool) -> None:
    assert is_safe_name(name) is safe


# --- key files ----------------------------------------------------------------------------


def test_key_file_wraps_the_master_key(fast_kdf: None) -> None:
    data = wrap_master_key(KEY, "pass phrase", "laptop")
    key = parse_key_file(data)
    assert key.key_id == storage_id(data) and key.label == "laptop"
    assert key.raw["n"] == 1024 and key.raw["kdf"] == "scrypt"
    assert unwrap_master_key(key, "pass phrase") == KEY
    assert unwrap_master_key(key, "pass phrasE") is None
    for secret in (b"pass phrase", KEY.enc_key, KEY.id_key, KEY.enc_key.hex().encode()):
        assert secret not in data


def test_two_wraps_differ(fast_kdf: None) -> None:
    a, b = wrap_master_key(KEY, "p"), wrap_master_key(KEY, "p")
    assert a != b  # fresh salt and nonce
    assert json.loads(a)["salt"] != json.loads(b)["salt"]


@pytest.mark.parametrize("value", ["", "abc", "512", "-1"])
def test_kdf_cost_falls_back_to_the_default(monkeypatch: pytest.MonkeyPatch,
                                            value: str) -> None:
    from vault.repository import keys

    monkeypatch.setenv("VAULT_KDF_N", value)
    assert keys._scrypt_n() == DEFAULT_SCRYPT_N
