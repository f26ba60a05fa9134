"""Turn a `[[sources]]` entry or a command-line argument into a `Source`.

Each source type is a package (`vault.sources.<type>`) named by its config model under the
`vault.sources` entry points (pyproject.toml: the one list of source types); its
`source` module calls `register(type, from_config=..., schemes=..., from_url=...,
browser=...)` when imported. They are imported on first use, and each imports its client
library (pymongo, ...) inside its functions, so `import vault` stays light. A plain path
(no `scheme://`) is a directory or file to back up as files.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vault.config.model import SOURCE_CONFIG_MODELS, FilesSourceConfig
from vault.errors import UsageError
from vault.sources.base import Source
from vault.sources.browse import SourceBrowser

ConfigFactory = Callable[[Any], Source]
UrlFactory = Callable[[str], Source]
#: (item name, stored bytes, unseal, seal) -> the bytes re-sealed, or None if unchanged
ItemResealer = Callable[[str, bytes, Callable[[bytes], bytes], Callable[[bytes], bytes]],
                        bytes | None]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class SourceType:
    type: str
    from_config: ConfigFactory
    schemes: tuple[str, ...] = ()
    from_url: UrlFactory | None = None
    browser: SourceBrowser | None = None  # how its stored snapshots are browsed
    #: a restore target is a file path (relative to where the command runs), not a URL
    target_is_path: bool = False
    #: its stored items with sealed secrets re-sealed under another key (export, copy)
    reseal_item: ItemResealer | None = None


_types: dict[str, SourceType] = {}
_schemes: dict[str, SourceType] = {}
_loaded = False


def register(type_name: str, *, from_config: ConfigFactory, schemes: tuple[str, ...] = (),
             from_url: UrlFactory | None = None, browser: SourceBrowser | None = None,
             target_is_path: bool = False, reseal_item: ItemResealer | None = None) -> None:
    """Make `type = "<type_name>"` entries (and `<scheme>://` arguments) build sources,
    its snapshots browsable with `browser`, and say what its restores and copies need."""
    entry = SourceType(type_name, from_config, schemes, from_url, browser, target_is_path,
                       reseal_item)
    if type_name in _types and _types[type_name] != entry:
        raise ValueError(f"source type {type_name!r} is already registered")
    _types[type_name] = entry
    for scheme in schemes:
        _schemes[scheme.lower()] = entry


def known_types() -> list[str]:
    _load()
    return sorted(_types)


def source_from_config(entry: Any) -> Source:
    """The source for one validated `[[sources]]` entry (a `vault.config.model.*SourceConfig`)."""
    _load()
    found = _types.get(entry.type)
    if found is None:
        raise UsageError(f"source {entry.name}: type {entry.type!r} is not supported "
                         f"(known: {', '.join(sorted(_types))})")
    return found.from_config(entry)


def restores_into_path(source_type: str) -> bool:
    """Whether a restore of `source_type` names its target by a file path (a relative one
    is resolved where the command runs) rather than by a URL."""
    _load()
    found = _types.get(source_type)
    return found is not None and found.target_is_path


def resealer_for(source_type: str) -> ItemResealer | None:
    """How `source_type` re-seals its stored items' secrets under another key; None when
    it keeps no sealed secret a copy or an export must carry."""
    _load()
    found = _types.get(source_type)
    return None if found is None else found.reseal_item


def browser_for(source_type: str) -> SourceBrowser | None:
    """How snapshots of `source_type` are browsed; None for files (a tree of their own)
    and for a type that registered no browser."""
    _load()
    found = _types.get(source_type)
    return found.browser if found is not None else None


def is_source_url(text: str) -> bool:
    """Whether a command-line argument is a `scheme://` URL rather than a path."""
    return _SCHEME_RE.match(text) is not None


def source_from_url(url: str) -> Source | None:
    """The source an ad-hoc `scheme://...` argument names; None for a plain path."""
    match = _SCHEME_RE.match(url)
    if match is None:
        return None
    _load()
    found = _schemes.get(match.group(1).lower())
    if found is None or found.from_url is None:
        # The URL stays out of the message: it may carry a password.
        raise UsageError(f"unknown source scheme {match.group(1)!r} "
                         f"(known: {', '.join(sorted(_schemes)) or 'none'})")
    return found.from_url(url)


def source_modules() -> list[str]:
    """The `source` module of every installed source type: beside the config model its
    entry point names (`vault.sources.sqlite.config` -> `vault.sources.sqlite.source`)."""
    return [f"{model.__module__.rpartition('.')[0]}.source"
            for model in SOURCE_CONFIG_MODELS if model is not FilesSourceConfig]


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for module in source_modules():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise  # a real import error inside the module
    _loaded = True
