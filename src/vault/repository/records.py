"""Small sealed JSON records kept beside the data: condemned packs, damage, journal anchors.

Each is one immutable object named by the SHA-256 of its sealed bytes, sealed with its
own AAD (so one kind can never be passed off as another) and carrying a `version`. A
record that does not open — damaged, forged without the key, renamed — or that a newer
vault wrote is skipped by `load_docs`: each caller says why skipping is safe for its kind.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vault.errors import ObjectNotFound
from vault.repository.crypto import DecryptionFailed, storage_id
from vault.storage.base import ObjectKind

if TYPE_CHECKING:
    from vault.repository.repository import Repository


def save_doc(repo: Repository, kind: ObjectKind, aad: bytes, doc: dict[str, Any]) -> str:
    """Seal and save `doc`; its storage name."""
    data = repo.cipher.seal(json.dumps(doc, sort_keys=True).encode(), aad)
    name = storage_id(data)
    repo.storage.save(kind, name, data)
    return name


def remove_doc(repo: Repository, kind: ObjectKind, name: str) -> None:
    with contextlib.suppress(ObjectNotFound):
        repo.storage.remove(kind, name)


def load_docs(repo: Repository, kind: ObjectKind, aad: bytes,
              max_version: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, document) of every record of `kind` that opens and is not newer than
    `max_version`."""
    for info in repo.storage.list(kind):
        try:
            sealed = repo.storage.load(kind, info.name)
            if storage_id(sealed) != info.name:
                raise DecryptionFailed("name does not match content hash")
            doc = json.loads(repo.cipher.open(sealed, aad))
            if not isinstance(doc, dict) or int(doc["version"]) > max_version:
                continue
        except (ObjectNotFound, DecryptionFailed, ValueError, KeyError, TypeError):
            continue
        yield info.name, doc
