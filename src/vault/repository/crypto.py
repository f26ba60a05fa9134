"""Authenticated encryption and keyed ids for every object the repository stores.

The master key has three parts, all random, generated once by `vault init`:
- `enc_key` (32 bytes): AES-256-GCM for every stored object, each with a fresh random
  96-bit nonce (safe far beyond the number of objects a repository will ever hold);
- `id_key` (32 bytes): HMAC-SHA256 key for blob ids. A keyed cryptographic hash, so ids
  reveal nothing about content and a collision (which would silently lose data) is
  infeasible. SHA-256 is hardware-accelerated here and releases the GIL;
- `chunker_seed`: perturbs the CDC gear table, so chunk boundaries cannot be used to
  fingerprint known files.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12
TAG_SIZE = 16
#: bytes a sealed object adds to its plaintext
OVERHEAD = NONCE_SIZE + TAG_SIZE


class DecryptionFailed(Exception):
    """The ciphertext was modified, truncated, or sealed under another key."""


@dataclass(frozen=True)
class MasterKey:
    enc_key: bytes
    id_key: bytes
    chunker_seed: int

    @classmethod
    def generate(cls) -> MasterKey:
        # The gear seed is XORed into 64-bit gear values; keep it positive and < 2**62.
        return cls(
            enc_key=secrets.token_bytes(32),
            id_key=secrets.token_bytes(32),
            chunker_seed=secrets.randbits(62) | 1,
        )

    def to_json_dict(self) -> dict[str, object]:
        return {
            "enc_key": base64.b64encode(self.enc_key).decode(),
            "id_key": base64.b64encode(self.id_key).decode(),
            "chunker_seed": self.chunker_seed,
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, object]) -> MasterKey:
        return cls(
            enc_key=base64.b64decode(str(data["enc_key"])),
            id_key=base64.b64decode(str(data["id_key"])),
            chunker_seed=int(str(data["chunker_seed"])),
        )

    def __repr__(self) -> str:  # never print key material
        return "MasterKey(<redacted>)"


class Cipher:
    """Seals and opens objects with AES-256-GCM; computes blob ids."""

    def __init__(self, key: MasterKey) -> None:
        self._aead = AESGCM(key.enc_key)
        self._id_key = key.id_key

    def blob_id(self, data: bytes | memoryview) -> bytes:
        return hmac.digest(self._id_key, data, "sha256")

    def seal(self, plaintext: bytes | memoryview, aad: bytes = b"") -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad or None)

    def open(self, sealed: bytes | memoryview, aad: bytes = b"") -> bytes:
        if len(sealed) < OVERHEAD:
            raise DecryptionFailed("object too short")
        view = memoryview(sealed)
        try:
            return self._aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], aad or None)
        except InvalidTag as exc:
            raise DecryptionFailed("authentication tag mismatch") from exc


def storage_id(data: bytes | memoryview) -> str:
    """Name of a stored file: SHA-256 of its exact bytes, so anyone can check it."""
    return hashlib.sha256(data).hexdigest()
