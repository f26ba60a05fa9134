"""Open a SQLite database read-only, whatever characters its path holds.

A read-only open needs a `file:` URI (`?mode=ro`), and a URI built by hand from the path,
`f"file:{path}?mode=ro"`, is wrong for a path holding `#`, `?` or `%`: SQLite reads `#`
as the start of a fragment and `?` as the start of the parameters, so `/data/a#1.db`
silently opens (or fails to open) `/data/a`. `Path.as_uri()` percent-encodes them. Every
read-only open in vault goes through here.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal

__all__ = ["open_read_only", "read_only_uri"]


def read_only_uri(path: str | os.PathLike[str], *, immutable: bool = False) -> str:
    """The `file:` URI that opens `path` read-only (`immutable`: without locking, for a
    file nothing writes to, or that cannot be locked, such as on a full disk)."""
    uri = Path(path).resolve().as_uri()
    return f"{uri}?immutable=1" if immutable else f"{uri}?mode=ro"


def open_read_only(path: str | os.PathLike[str], *, timeout: float = 5.0,
                   isolation_level: Literal["DEFERRED"] | None = "DEFERRED",
                   check_same_thread: bool = True, immutable: bool = False) -> sqlite3.Connection:
    """A read-only connection to the database at `path` (never created if missing:
    sqlite3.OperationalError instead)."""
    return sqlite3.connect(read_only_uri(path, immutable=immutable), uri=True, timeout=timeout,
                           isolation_level=isolation_level,
                           check_same_thread=check_same_thread)
