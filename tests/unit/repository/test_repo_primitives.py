"""The repository's building blocks: encryption, ids, compression, chunking."""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from vault.repository.chunker import Chunker, ChunkerParams
from vault.repository.compress import compress, decompress
from vault.repository.crypto import (
    OVERHEAD,
    Cipher,
    DecryptionFailed,
    MasterKey,
    storage_id,
)

KEY = MasterKey.generate()


# --- crypto -------------------------------------------------------------------------------


def test_seal_open_round_trip_with_fresh_nonces() -> None:
    cipher = Cipher(KEY)
    a, b = cipher.seal(b"hello", b"aad"), cipher.seal(b"hello", b"aad")
    assert a != b  # a fresh nonce every time
    assert len(a) == 5 + OVERHEAD
    assert cipher.open(a, b"aad") == cipher.open(b, b"aad") == b"hello"
    assert cipher.open(cipher.seal(b""), b"") == b""


def test_any_flipped_bit_is_detected() -> None:
    cipher = Cipher(KEY)
    sealed = bytearray(cipher.seal(b"x" * 100, b"id"))
    for position in range(len(sealed)):
        damaged = bytearray(sealed)
        damaged[position] ^= 0x10
        with pytest.raises(DecryptionFailed):
            cipher.open(bytes(damaged), b"id")


@pytest.mark.parametrize("sealed, aad", [
    (b"short", b""),  # shorter than nonce + tag
    (None, b"other associated data"),  # a blob sealed for another id
])
def test_open_refuses(sealed: bytes | None, aad: bytes) -> None:
    cipher = Cipher(KEY)
    with pytest.raises(DecryptionFailed):
        cipher.open(sealed if sealed is not None else cipher.seal(b"data", b"id"), aad)


def test_another_key_cannot_open() -> None:
    sealed = Cipher(KEY).seal(b"data")
    with pytest.raises(DecryptionFailed):
        Cipher(MasterKey.generate()).open(sealed)


def test_blob_ids_are_keyed_and_deterministic() -> None:
    cipher = Cipher(KEY)
    assert cipher.blob_id(b"data") == cipher.blob_id(memoryview(b"data"))
    assert len(cipher.blob_id(b"data")) == 32
    assert cipher.blob_id(b"data") != Cipher(MasterKey.generate()).blob_id(b"data")
    assert cipher.blob_id(b"data") != hashlib.sha256(b"data").digest()


def test_storage_id_is_plain_sha256() -> None:
    assert storage_id(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_master_key_never_prints_and_round_trips() -> None:
    assert KEY.enc_key.hex() not in repr(KEY) and "redacted" in repr(KEY)
    assert MasterKey.from_json_dict(KEY.to_json_dict()) == KEY
    assert 0 < KEY.chunker_seed < 2**62


# --- compression --------------------------------------------------------------------------


def test_compressible_data_is_compressed_and_comes_back() -> None:
    data = b"the same line again\n" * 5000
    payload, compressed = compress(data, 3)
    assert compressed and len(payload) < len(data) // 10
    assert decompress(bytes(payload), len(data)) == data


@pytest.mark.parametrize("data, level", [
    # incompressible: stored raw (seeded: every xdist worker must collect the same ids)
    (random.Random(0).randbytes(100_000), 3),
    (b"a" * 63, 3),  # too small to bother
    (b"a" * 10_000, 0),  # compression off
], ids=["incompressible", "tiny", "level-0"])
def test_stored_raw(data: bytes, level: int) -> None:
    payload, compressed = compress(data, level)
    assert not compressed and bytes(payload) == data


# --- chunking -----------------------------------------------------------------------------

PARAMS = ChunkerParams.for_average(64 << 10)


def _data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_chunks_cover_the_input_within_bounds() -> None:
    data = _data(3 << 20, 1)
    chunks = [bytes(c) for c in Chunker(PARAMS, 12345).cut_buffer(data)]
    assert b"".join(chunks) == data
    assert len(chunks) > 20
    assert all(PARAMS.min_size <= len(c) <= PARAMS.max_size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= PARAMS.max_size


def test_small_input_is_one_chunk() -> None:
    assert [bytes(c) for c in Chunker(PARAMS, 1).cut_buffer(b"tiny")] == [b"tiny"]


def test_boundaries_depend_on_content_and_seed_only() -> None:
    data = _data(2 << 20, 2)

    def sizes(seed: int) -> list[int]:
        return [len(c) for c in Chunker(PARAMS, seed).cut_buffer(data)]

    assert sizes(7) == sizes(7)
    assert sizes(7) != sizes(8)  # the seed hides boundaries of known content


def test_an_insert_changes_only_nearby_chunks() -> None:
    data = _data(4 << 20, 3)
    chunker = Chunker(PARAMS, 99)
    before = {bytes(c) for c in chunker.cut_buffer(data)}
    after = [bytes(c) for c in chunker.cut_buffer(data[:1000] + b"X" + data[1000:])]
    new = [c for c in after if c not in before]
    assert len(new) <= 2
    assert sum(map(len, new)) < 3 * PARAMS.max_size


def test_cut_file_matches_cut_buffer(tmp_path) -> None:
    data = _data(1 << 20, 4)
    path = tmp_path / "f"
    path.write_bytes(data)
    chunker = Chunker(PARAMS, 5)
    from_file = [bytes(c) for c in chunker.cut_file(str(path))]
    assert from_file == [bytes(c) for c in chunker.cut_buffer(data)]
    assert io.BytesIO(b"".join(from_file)).getvalue() == data
