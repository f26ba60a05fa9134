"""Pick a storage backend from a repository URL, as restic's ``location`` registry does.

``open_storage("/srv/repo")``, ``open_storage("file:///srv/repo")`` and
``open_storage("s3://bucket/prefix", settings)`` all go through here. Each adapter module calls
``register(scheme, factory)`` when imported; the adapters that ship with vault are listed
in ``_ADAPTER_MODULES`` and imported on first use. Adding a backend therefore means: write
the module (importing its client library inside the factory, so ``vault`` stays light),
add it to that tuple, and add a harness to the contract suite — nothing else changes.

A factory receives the URL and the ``[repository]`` settings (or None): what a backend needs
besides the URL — an endpoint, secret references for its credentials — lives there, because
a URL is shown in messages and must never carry a secret.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from vault.config.document import RESTIC_LOCATION
from vault.errors import UsageError

if TYPE_CHECKING:
    from vault.config.model import RepositoryConfig
    from vault.storage.base import Storage

StorageFactory = Callable[[str, "RepositoryConfig | None"], "Storage"]

# Importing a module here must stay cheap: heavy client libraries (paramiko, boto3) are
# imported inside each module's factory, not at its top.
_ADAPTER_MODULES: tuple[str, ...] = (
    "vault.storage.local", "vault.storage.s3", "vault.storage.sftp", "vault.storage.gcs",
    "vault.storage.azure",
)

# Plain paths belong to the local backend, registered under this scheme.
LOCAL_SCHEME = "file"

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# restic's ``gs:bucket:/prefix`` and ``azure:container:/prefix``: the scheme vault registers
# each under, and what its first part is called.
_RESTIC_BUCKET_SCHEMES = {"gs": ("gs", "bucket"), "azure": ("az", "container")}
_RESTIC_BUCKET_FORM = re.compile(r"([A-Za-z]+):([^:/]+):(.*)", re.DOTALL)

_factories: dict[str, StorageFactory] = {}
_adapters_loaded = False


def register(scheme: str, factory: StorageFactory) -> None:
    """Make ``scheme://...`` URLs open with ``factory(url, settings)``.

    Registering a scheme twice with different factories is refused: silently replacing a
    backend would route a repository's writes somewhere nobody chose.
    """
    key = scheme.lower()
    existing = _factories.get(key)
    if existing is not None and existing is not factory:
        raise ValueError(f"storage scheme {key!r} is already registered")
    _factories[key] = factory


def unregister(scheme: str) -> None:
    """Forget a scheme (for tests and plugins that register temporary backends)."""
    _factories.pop(scheme.lower(), None)


def known_schemes() -> list[str]:
    """Every registered scheme, sorted, with the shipped adapters loaded."""
    _load_adapters()
    return sorted(_factories)


def scheme_of(url: str) -> str:
    """The URL's scheme; plain paths (absolute or relative) are local files. restic's
    spellings (``s3:https://host/bucket``, ``sftp:user@host:/path``, ``b2:bucket``) name
    their backend, so they are never mistaken for a relative path; ``gs:`` and ``azure:``
    name vault's ``gs`` and ``az``."""
    match = _SCHEME_RE.match(url) or RESTIC_LOCATION.match(url)
    if match is None:
        return LOCAL_SCHEME
    scheme = match.group(1).lower()
    if match.re is RESTIC_LOCATION and scheme in _RESTIC_BUCKET_SCHEMES:
        return _RESTIC_BUCKET_SCHEMES[scheme][0]
    return scheme


def from_restic_bucket_form(url: str) -> str:
    """restic's ``gs:bucket:/prefix`` and ``azure:container:/prefix`` (the slash after the
    second colon optional, as restic has it) as ``gs://bucket/prefix`` and
    ``az://container/prefix``; any other location unchanged."""
    restic = RESTIC_LOCATION.match(url)
    if restic is None or restic.group(1).lower() not in _RESTIC_BUCKET_SCHEMES:
        return url
    given = restic.group(1).lower()
    scheme, noun = _RESTIC_BUCKET_SCHEMES[given]
    match = _RESTIC_BUCKET_FORM.fullmatch(url)
    if match is None:
        raise UsageError(f"restic-style {given}: location needs a {noun} and a path: "
                         f"{given}:{noun}:/prefix")
    # The prefix is taken as it is written: quoted, so '%', '?' or '#' in it stay
    # characters of the prefix (the backend unquotes the URL's path).
    return f"{scheme}://{match.group(2)}/{quote(match.group(3).strip('/'), safe='/')}"


def open_storage(url: str, settings: RepositoryConfig | None = None) -> Storage:
    """Open the repository storage that ``url`` names; UsageError for unknown schemes.

    ``settings`` is the ``[repository]`` table (endpoints, credential references) for
    backends that need more than the URL; None means the backend's defaults and the
    environment."""
    if not url:
        raise UsageError("no repository location given")
    _load_adapters()
    url = from_restic_bucket_form(url)
    scheme = scheme_of(url)
    factory = _factories.get(scheme)
    if factory is None:
        # The URL itself stays out of the message: it may carry credentials.
        known = ", ".join(sorted(_factories))
        raise UsageError(f"unknown storage scheme {scheme!r} (known: {known})")
    return factory(url, settings)


def _load_adapters() -> None:
    global _adapters_loaded
    if _adapters_loaded:
        return
    for module in _ADAPTER_MODULES:
        importlib.import_module(module)
    _adapters_loaded = True
