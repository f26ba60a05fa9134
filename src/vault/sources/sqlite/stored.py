"""A SQLite snapshot's one item, found among the stored items and made a file again."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vault.sources.base import StoredItems
from vault.sources.sqlite.db import SqliteError

__all__ = ["materialized", "stored_item_path", "write_item"]

_COPY_BUFFER = 1 << 20


def stored_item_path(stored: StoredItems) -> str:
    """The database file among the snapshot's items (the one its metadata names)."""
    paths = stored.paths()
    named = stored.meta.get("item")
    if named in paths:
        return str(named)
    if len(paths) == 1:
        return paths[0]
    raise SqliteError(path=str(stored.meta.get("path", "?")),
                      detail=f"the snapshot holds {len(paths)} items, not one database file")


@contextlib.contextmanager
def materialized(stored: StoredItems, item: str, scratch_dir: str | None) -> Iterator[Path]:
    """The snapshot's database as a file SQLite can read (in `scratch_dir`, or the
    system's temporary directory), removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=".vault-sqlite-", dir=scratch_dir))
    try:
        path = workdir / "snapshot.db"
        write_item(stored, item, path)
        yield path
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_item(stored: StoredItems, item: str, path: Path) -> None:
    with stored.open(item) as source, open(path, "wb") as out:
        shutil.copyfileobj(source, out, _COPY_BUFFER)
        out.flush()
        os.fsync(out.fileno())
