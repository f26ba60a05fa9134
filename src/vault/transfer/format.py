"""The export file format (pure framing; no repository, no file system).

    file    := MAGIC(8) version(u16) header_len(u32) header(JSON) record* END-record TRAILER
    record  := kind(u8) length(u32) payload
    TRAILER := END_MAGIC(8) SHA-256(32) over every byte before the trailer

Record payloads are zstd-compressed plaintext: the metadata (first record; since
version 2 it lists every snapshot of the file, one or a group's members), then the data
blobs and trees, every tree after the blobs and subtrees it names, each member's root
after its trees. A SETTINGS record (version 2) is a data blob holding a settings document
whose sealed secrets are sealed under the file's key (the importer re-seals them).

Encrypted (the default since version 2), each payload is sealed with AES-256-GCM under a
key derived by scrypt from a passphrase (salt and cost in the plain header); the record's
kind and sequence number are authenticated with it, so records cannot be dropped or
reordered unnoticed, and since version 2 the END record (the count) is sealed too, so a
file cut at a record boundary and given a new checksum is refused. The header carries a
check value sealed under the same key, which tells a wrong passphrase apart from a
damaged file.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vault.repository.keys import _scrypt_n

MAGIC = b"VAULTEXP"
END_MAGIC = b"VAULTEND"
#: the version this vault writes; readers for it and every older one live in reader.py
FORMAT_VERSION = 2
PREAMBLE = struct.Struct(">8sHI")  # magic, version, header length
RECORD = struct.Struct(">BI")  # kind, payload length
TRAILER_SIZE = len(END_MAGIC) + 32
#: no record is bigger than a maximum chunk (16 MiB) plus overhead; refuse absurd lengths
#: before allocating them
MAX_RECORD = 64 << 20
MAX_HEADER = 1 << 20
_CHECK = b"vault export passphrase check"
_NONCE = 12


class RecordKind(IntEnum):
    END = 0
    META = 1
    DATA = 2
    TREE = 3
    SETTINGS = 4


#: what an encrypted export's key was derived from (named in its header, never the key)
KEY_PASSPHRASE = "passphrase"  # a passphrase given for this file
KEY_REPOSITORY = "repository"  # the exporting repository's passphrase (the default)


class FormatError(Exception):
    """The bytes do not follow the format (the caller names the file)."""


@dataclass(frozen=True)
class Encryption:
    """scrypt parameters of an encrypted export (stored in its plain header)."""

    salt: bytes
    n: int
    r: int = 8
    p: int = 1

    @classmethod
    def new(cls) -> Encryption:
        return cls(salt=secrets.token_bytes(16), n=_scrypt_n())

    def to_json(self, check: bytes, key: str | None = None,
                repo_id: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "cipher": "aes-256-gcm", "kdf": "scrypt", "n": self.n, "r": self.r, "p": self.p,
            "salt": base64.b64encode(self.salt).decode(), "check": base64.b64encode(check).decode()}
        if key is not None:
            doc["key"] = key
        if repo_id is not None:
            doc["repo_id"] = repo_id
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> tuple[Encryption, bytes]:
        try:
            enc = cls(salt=base64.b64decode(doc["salt"]), n=int(doc["n"]), r=int(doc["r"]),
                      p=int(doc["p"]))
            return enc, base64.b64decode(doc["check"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"bad encryption header: {exc}") from exc

    def derive(self, passphrase: str) -> bytes:
        return Scrypt(salt=self.salt, length=32, n=self.n, r=self.r,
                      p=self.p).derive(passphrase.encode("utf-8"))


class RecordSealer:
    """AES-256-GCM per record, bound to its kind, position and the format version."""

    def __init__(self, key: bytes, version: int = FORMAT_VERSION) -> None:
        self._aead = AESGCM(key)
        self._key = key
        self._label = f"vault-export-v{version}".encode()

    def seal(self, kind: int, seq: int, data: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, self._aad(kind, seq))

    def open(self, kind: int, seq: int, sealed: bytes) -> bytes:
        if len(sealed) < _NONCE + 16:
            raise InvalidTag
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._aad(kind, seq))

    def _aad(self, kind: int, seq: int) -> bytes:
        return self._label + struct.pack(">BQ", kind, seq)

    def secrets_sealer(self) -> SecretsSealer:
        """The sealer of the settings secrets inside this file (a key of its own, derived
        from the file's key, so a secret is never sealed twice under one key and label)."""
        return SecretsSealer(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                                  info=b"vault export settings secrets").derive(self._key))

    def check_value(self) -> bytes:
        return self.seal(0, 0xFFFFFFFF, _CHECK)

    def opens_check(self, check: bytes) -> bool:
        try:
            return self.open(0, 0xFFFFFFFF, check) == _CHECK
        except InvalidTag:
            return False


class SecretsSealer:
    """Seals and opens settings secrets carried by an encrypted export (a SecretSealer)."""

    _AAD = b"vault export settings secret"

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, self._AAD)

    def unseal(self, sealed: bytes) -> bytes:
        if len(sealed) < _NONCE + 16:
            raise InvalidTag
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._AAD)


def encode_preamble(header: dict[str, Any], version: int = FORMAT_VERSION) -> bytes:
    doc = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    return PREAMBLE.pack(MAGIC, version, len(doc)) + doc


def encode_record(kind: RecordKind, payload: bytes) -> bytes:
    return RECORD.pack(int(kind), len(payload)) + payload


def unpack_payload(packed: bytes) -> bytes:
    try:
        # A frame that declares its size is decompressed into a buffer of that size, and
        # max_output_size does not bound it: refuse an absurd declared size first.
        declared = zstandard.frame_content_size(packed)
        if declared > MAX_RECORD:
            raise FormatError(f"a record declares {declared} bytes (more than any record)")
        return zstandard.ZstdDecompressor().decompress(packed, max_output_size=MAX_RECORD)
    except zstandard.ZstdError as exc:
        raise FormatError(f"a record does not decompress: {exc}") from exc
