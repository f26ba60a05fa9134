"""Which settings are secrets, and how they are kept out of a backup (pure functions).

A key is a secret when its name or its dotted path ("smtp.password", "servers.0.token")
matches one of the glob patterns, case-insensitively. The whole value under a secret key
(a string, a number, a table, a list) is one secret: it is replaced by the redaction
marker, or sealed with the repository's sealer so it can be restored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from vault.config.source_parts import DEFAULT_SECRET_KEYS as CONFIG_DEFAULT_SECRET_KEYS
from vault.sources.settings.codec import REDACTED, Redacted, Sealed, canonical_bytes, decode, encode

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "Protected",
    "SecretMatcher",
    "join_path",
    "protect",
    "reseal",
    "unseal",
]

#: *password*, *secret*, *token*, *_key, ... (the list lives with the config's default)
DEFAULT_SECRET_KEYS: tuple[str, ...] = tuple(CONFIG_DEFAULT_SECRET_KEYS)


def join_path(parent: str, key: object) -> str:
    return f"{parent}.{key}" if parent else str(key)


class SecretMatcher:
    """Tells whether a key (given its dotted path) holds a secret."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(pattern.lower() for pattern in patterns)

    def is_secret(self, key: object, path: str) -> bool:
        name, dotted = str(key).lower(), path.lower()
        return any(fnmatchcase(name, p) or fnmatchcase(dotted, p) for p in self.patterns)


@dataclass
class Protected:
    """Settings with their secrets replaced, and the dotted paths of those secrets."""

    settings: Any
    secrets: list[str] = field(default_factory=list)


def protect(settings: Any, matcher: SecretMatcher,
            seal: Callable[[bytes], bytes] | None) -> Protected:
    """Replace every secret by `REDACTED`, or by its sealed encoding when `seal` is given."""
    found: list[str] = []

    def hide(value: Any) -> Any:
        if seal is None:
            return REDACTED
        return Sealed(seal(canonical_bytes(encode(value))))

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                child = join_path(path, key)
                if matcher.is_secret(key, child):
                    found.append(child)
                    out[key] = hide(item)
                else:
                    out[key] = walk(item, child)
            return out
        if isinstance(value, list):
            return [walk(item, join_path(path, index)) for index, item in enumerate(value)]
        return value

    return Protected(walk(settings, ""), found)


def unseal(settings: Any, open_sealed: Callable[[bytes], bytes]) -> Any:
    """Settings with every `Sealed` value decrypted back to its original value."""
    if isinstance(settings, Sealed):
        return decode(json.loads(open_sealed(settings.data)))
    if isinstance(settings, dict):
        return {key: unseal(item, open_sealed) for key, item in settings.items()}
    if isinstance(settings, list):
        return [unseal(item, open_sealed) for item in settings]
    return settings


def has_sealed(settings: Any) -> bool:
    if isinstance(settings, Sealed):
        return True
    if isinstance(settings, dict):
        return any(has_sealed(item) for item in settings.values())
    if isinstance(settings, list):
        return any(has_sealed(item) for item in settings)
    return False


def is_redacted(value: Any) -> bool:
    return isinstance(value, Redacted)


def reseal(settings: Any, open_sealed: Callable[[bytes], bytes],
           seal: Callable[[bytes], bytes]) -> Any:
    """Settings with every `Sealed` value opened and sealed again under another key (an
    export carries them under its own key); the plaintext never leaves this function."""
    if isinstance(settings, Sealed):
        return Sealed(seal(open_sealed(settings.data)))
    if isinstance(settings, dict):
        return {key: reseal(item, open_sealed, seal) for key, item in settings.items()}
    if isinstance(settings, list):
        return [reseal(item, open_sealed, seal) for item in settings]
    return settings
