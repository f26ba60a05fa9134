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

from vault.errors import IntegrityError
from vault.operations.group_capture import sealer_for
from vault.repository.copier import Rewrite, RewriteFor
from vault.repository.crypto import DecryptionFailed
from vault.repository.repository import Repository
from vault.repository.snapshot import Snapshot
from vault.repository.tree import Node
from vault.sources.registry import resealer_for


def rewrite_for(snapshot: Snapshot, source: Repository,
                destination: Repository) -> RewriteFor | None:
    """What a copy of `snapshot` rewrites: the items whose sealed secrets its source type
    re-seals (a settings snapshot's document); None when the type seals nothing."""
    resealer = resealer_for(str(snapshot.source.get("type")))
    if resealer is None:
        return None
    unseal, seal = sealer_for(source).unseal, sealer_for(destination).seal

    def choose(node: Node) -> Rewrite | None:
        def resealed(data: bytes) -> bytes | None:
            try:
                return resealer(node.name, data, unseal, seal)
            except DecryptionFailed as exc:
                raise IntegrityError(what="sealed settings secret", repo=source.location,
                                     detail=f"does not open with its key: {exc}") from exc
        return resealed
    return choose
