"""Key files: the master key wrapped under a key derived from a passphrase with scrypt.

Several key files can unlock one repository (like restic): each wraps the same master
key. Adding, removing or changing a passphrase never re-encrypts data.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vault.repository.crypto import NONCE_SIZE, MasterKey, storage_id

# scrypt N=2**15, r=8, p=1: ~32 MiB and ~0.1 s here; tune with VAULT_KDF_N only for tests.
DEFAULT_SCRYPT_N = 2**15
_AAD = b"vault-key-v1"


@dataclass(frozen=True)
class KeyFile:
    """A parsed key file (public fields only, the wrapped key stays opaque)."""

    key_id: str
    created: str
    host: str
    user: str
    label: str | None
    raw: dict[str, Any]


def _kdf(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _scrypt_n() -> int:
    value = os.environ.get("VAULT_KDF_N", "")
    return int(value) if value.isdigit() and int(value) >= 2**10 else DEFAULT_SCRYPT_N


def wrap_master_key(master: MasterKey, passphrase: str, label: str | None = None) -> bytes:
    """Serialise a new key file; its storage name is `storage_id()` of the bytes."""
    salt = secrets.token_bytes(16)
    n, r, p = _scrypt_n(), 8, 1
    kek = _kdf(passphrase, salt, n, r, p)
    nonce = os.urandom(NONCE_SIZE)
    plaintext = json.dumps(master.to_json_dict()).encode()
    sealed = nonce + AESGCM(kek).encrypt(nonce, plaintext, _AAD)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    doc = {
        "version": 1,
        "kdf": "scrypt",
        "n": n,
        "r": r,
        "p": p,
        "salt": base64.b64encode(salt).decode(),
        "created": datetime.now(UTC).isoformat(),
        "host": socket.gethostname(),
        "user": user,
        "label": label,
        "data": base64.b64encode(sealed).decode(),
    }
    return json.dumps(doc, indent=1).encode()


def parse_key_file(data: bytes) -> KeyFile:
    doc = json.loads(data)
    return KeyFile(
        key_id=storage_id(data),
        created=str(doc.get("created", "")),
        host=str(doc.get("host", "")),
        user=str(doc.get("user", "")),
        label=doc.get("label"),
        raw=doc,
    )


def unwrap_master_key(key: KeyFile, passphrase: str) -> MasterKey | None:
    """The master key, or None when the passphrase does not open this key file."""
    doc = key.raw
    salt = base64.b64decode(doc["salt"])
    kek = _kdf(passphrase, salt, int(doc["n"]), int(doc["r"]), int(doc["p"]))
    sealed = base64.b64decode(doc["data"])
    try:
        plaintext = AESGCM(kek).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _AAD)
    except InvalidTag:
        return None
    return MasterKey.from_json_dict(json.loads(plaintext))
