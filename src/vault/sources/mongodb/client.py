"""Connecting to MongoDB and turning the driver's errors into vault's one-line errors.

The password comes from the source's `SecretRef` and is given to the driver beside the
URL, never inside it; every message names the server by its URL without credentials and
is scrubbed of the password in case a driver message ever echoes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from vault.errors import OperationFailed

if TYPE_CHECKING:
    from pymongo import MongoClient

__all__ = ["MongoCommandFailed", "MongoUnreachable", "connect", "server_errors"]

DEFAULT_TIMEOUT_MS = 10_000
_AUTH_FAILED = 18
_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")


class MongoUnreachable(OperationFailed):
    """cannot connect to MongoDB at {where}: {reason}"""


class MongoCommandFailed(OperationFailed):
    """MongoDB at {where}: {reason}"""


def connect(url: str, password: str | None, where: str) -> MongoClient[Any]:
    """A client whose server has answered a ping (so a wrong host fails here, clearly)."""
    from pymongo import MongoClient

    options: dict[str, Any] = {}
    lowered = url.lower()
    if "serverselectiontimeoutms" not in lowered:
        options["serverSelectionTimeoutMS"] = DEFAULT_TIMEOUT_MS
    if "connecttimeoutms" not in lowered:
        options["connectTimeoutMS"] = DEFAULT_TIMEOUT_MS
    if password is not None:
        options["password"] = password
    with server_errors(where, password):
        client: MongoClient[Any] = MongoClient(url, appname="vault", **options)
        try:
            client.admin.command("ping")
        except BaseException:
            client.close()
            raise
    return client


@contextmanager
def server_errors(where: str, password: str | None = None) -> Iterator[None]:
    """Driver errors raised inside become `MongoUnreachable` / `MongoCommandFailed`."""
    from pymongo.errors import (
        ConfigurationError,
        ConnectionFailure,
        InvalidURI,
        OperationFailure,
        PyMongoError,
    )

    try:
        yield
    except (ConnectionFailure, InvalidURI, ConfigurationError) as exc:
        raise MongoUnreachable(where=where, reason=_reason(exc, password)) from None
    except OperationFailure as exc:
        if exc.code == _AUTH_FAILED:
            raise MongoUnreachable(where=where, reason="authentication failed") from None
        raise MongoCommandFailed(where=where, reason=_reason(exc, password)) from None
    except PyMongoError as exc:
        raise MongoCommandFailed(where=where, reason=_reason(exc, password)) from None


def _reason(exc: Exception, password: str | None) -> str:
    """The driver's message, cut to its first useful line: "connection refused"."""
    details = getattr(exc, "details", None)
    text = str((details or {}).get("errmsg") or exc)
    text = text.split(" (configured timeouts", 1)[0].split(", full error:", 1)[0]
    text = text.split("\n", 1)[0]
    host = re.match(r"^[\w.\-\[\]:]+:\d+: ", text)
    if host:
        text = text[host.end():]
    text = _ERRNO.sub("", text).strip() or type(exc).__name__
    if password:
        text = text.replace(password, "***")
    return text[0].lower() + text[1:]
