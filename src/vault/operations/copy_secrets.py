"""Secrets a snapshot holds sealed under its repository's key, carried by `vault copy`.

A settings snapshot with `secrets = "encrypt"` holds its secret values sealed with a key
derived from the source repository's master key; the destination has other keys, so the
copy opens each one and seals it again under the destination's (the plaintext never leaves
this process, as for `vault export`, operations/export_members.py). A database snapshot's
sealed cells (`secret_tables` / `secret_collections` with `secrets = "encrypt"`) travel as
they are, as they do through an export: in the destination they restore as
`vault:sealed:...` text (docs/offsite.md#what-is-checked).
"""

from __future__ import annotations

import json

from vault.errors import IntegrityError
from vault.operations.group_capture import sealer_for
from vault.repository.copier import Rewrite, RewriteFor
from vault.repository.crypto import DecryptionFailed
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node
from vault.sources.settings.codec import canonical_bytes, decode, encode
from vault.sources.settings.secrets import has_sealed, reseal
from vault.sources.settings.source import ITEM as SETTINGS_ITEM


def rewrite_for(snapshot: Snapshot, source: Repository,
                destination: Repository) -> RewriteFor | None:
    """What a copy of `snapshot` rewrites: a settings snapshot's document; else nothing."""
    if snapshot.source.get("type") != "settings":
        return None
    resealer = _resealer(source, destination)

    def choose(node: Node) -> Rewrite | None:
        return resealer if node.name == SETTINGS_ITEM else None
    return choose


def _resealer(source: Repository, destination: Repository) -> Rewrite:
    unseal, seal = sealer_for(source).unseal, sealer_for(destination).seal

    def resealed(data: bytes) -> bytes | None:
        try:
            document = json.loads(data)
            settings = decode(document["settings"])
        except (ValueError, KeyError, TypeError):
            return None  # not a settings document: copied as it is, like any file
        if not has_sealed(settings):
            return None  # redacted secrets stay redacted; nothing sealed to carry
        try:
            document["settings"] = encode(reseal(settings, unseal, seal))
        except DecryptionFailed as exc:
            raise IntegrityError(what="sealed settings secret", repo=source.location,
                                 detail=f"does not open with its key: {exc}") from exc
        return canonical_bytes(document)
    return resealed
