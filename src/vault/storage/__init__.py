"""Where repository objects live: one small interface, many backends.

Callers use ``open_storage(url)`` and the ``Storage`` protocol; concrete backends
(``vault.storage.local``; sftp and s3 later) are reached only through the registry, and
decorators such as ``vault.storage.retry.RetryingStorage`` wrap any of them.
"""

from vault.storage.base import KINDS, InvalidObjectName, ObjectInfo, ObjectKind, Storage
from vault.storage.registry import known_schemes, open_storage, register

__all__ = [
    "KINDS",
    "InvalidObjectName",
    "ObjectInfo",
    "ObjectKind",
    "Storage",
    "known_schemes",
    "open_storage",
    "register",
]
