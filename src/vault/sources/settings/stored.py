"""The one item a settings snapshot stores, and its sealed secrets carried to another key.

`vault export` and `vault copy` move a snapshot to a place with other keys: a document
whose secrets were sealed (`secrets = "encrypt"`) has each one opened with the old key and
sealed again with the new one here, the plaintext never leaving this process.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from vault.sources.settings.codec import canonical_bytes, decode, encode
from vault.sources.settings.secrets import has_sealed, reseal

#: the settings document, as SettingsSource stores it
ITEM = "settings.json"


def reseal_item(name: str, data: bytes, unseal: Callable[[bytes], bytes],
                seal: Callable[[bytes], bytes]) -> bytes | None:
    """The stored item `name` with its sealed secrets opened by `unseal` and sealed again by
    `seal`; None when it needs no change (not the settings document, or nothing sealed:
    redacted secrets stay redacted)."""
    if name != ITEM:
        return None
    try:
        document = json.loads(data)
        settings = decode(document["settings"])
    except (ValueError, KeyError, TypeError):
        return None  # not a settings document: carried as it is, like any file
    if not has_sealed(settings):
        return None
    document["settings"] = encode(reseal(settings, unseal, seal))
    return canonical_bytes(document)


def reseal_document(data: bytes, unseal: Callable[[bytes], bytes],
                    seal: Callable[[bytes], bytes]) -> bytes:
    """A settings document known to hold sealed secrets (an export file's settings record),
    each opened by `unseal` and sealed again by `seal`; ValueError, KeyError or TypeError
    (and the AEAD's InvalidTag) when it is not what it should be."""
    document = json.loads(data)
    document["settings"] = encode(reseal(decode(document["settings"]), unseal, seal))
    return canonical_bytes(document)
