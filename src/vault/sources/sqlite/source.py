"""A SQLite database file as a source: a consistent copy of a live database, one item.

The copy is made with SQLite's online backup API inside one read transaction on the
application's database, so it is the database as of one commit while writers go on (WAL)
or wait a moment (rollback journal) -- never a torn file copy. The backup API copies page
by page in the source's own page order, so a commit that changes a few pages changes the
same few pages of the copy and the rest deduplicates (docs/performance.md measures this
against `VACUUM INTO`, which rewrites the whole file in a new order; it stays available as
`copy = "vacuum"` for a compact copy of a database with much free space).

Configured as `type = "sqlite"`, or ad hoc as `sqlite:///absolute/path/app.db`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Literal

from vault.errors import UsageError
from vault.foundation.sqlite_readonly import open_read_only
from vault.sources.base import Capture, PlannedRestore, SourceEstimate, SourceItem
from vault.sources.entities import Entity, EntitySelection, subtree
from vault.sources.registry import register
from vault.sources.sqlite.browse import BROWSER
from vault.sources.sqlite.db import (
    BusyPolicy,
    SqliteError,
    connect_readonly,
    pragma,
    table_row_counts,
    translate_open_error,
    user_tables,
    wal_size,
    with_busy_retry,
)
from vault.sources.sqlite.entities import entity_meta, keep_only
from vault.sources.sqlite.restore import restore_database
from vault.sources.sqlite.secrets import (
    SecretFields,
    protect_copy,
    revealed,
    secret_tables_from_config,
)

if TYPE_CHECKING:
    from vault.sources.base import (
        CaptureContext,
        SourceRestoreRequest,
        SourceRestoreResult,
        StoredItems,
    )

__all__ = ["CopyMethod", "SqliteSource", "source_from_config", "source_from_url"]

CopyMethod = Literal["backup", "vacuum"]
_URL_PREFIX = "sqlite://"


class SqliteSource(PlannedRestore):
    """One SQLite database file."""

    type: ClassVar[str] = "sqlite"

    def __init__(self, name: str, path: Path | str, *, copy: CopyMethod = "backup",
                 busy: BusyPolicy | None = None, entities: tuple[Entity, ...] = (),
                 selection: EntitySelection | None = None,
                 secret_fields: SecretFields | None = None) -> None:
        self.name = name
        self.path = Path(path)
        self.copy: CopyMethod = copy
        self.busy = busy or BusyPolicy()
        self.entities = entities
        self.selection = selection
        self.secret_fields = secret_fields

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"type": self.type, "name": self.name,
                                     "path": str(self.path), "copy": self.copy}
        if self.selection is not None:
            described["entity"] = {"entity": self.selection.entity,
                                   "ids": [str(i) for i in self.selection.ids]}
        return described

    def select_entity(self, entity: str, ids: tuple[Any, ...]) -> SqliteSource:
        """A copy that backs up these rows of one entity and every row below them."""
        if not self.entities:
            raise UsageError(f"source {self.name} declares no entities ([[sources.entities]])")
        try:
            subtree(self.entities, entity)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
        return SqliteSource(self.name, self.path, copy=self.copy, busy=self.busy,
                            entities=self.entities, selection=EntitySelection(entity, ids),
                            secret_fields=self.secret_fields)

    def estimate(self) -> SourceEstimate:
        conn = connect_readonly(self.path, self.busy.attempt_timeout)
        try:
            tables = with_busy_retry(lambda: user_tables(conn), self.path, self.busy)
        except sqlite3.DatabaseError as error:
            raise translate_open_error(error, self.path) from error
        finally:
            conn.close()
        file_bytes, wal_bytes = self.path.stat().st_size, wal_size(self.path)
        return SourceEstimate(bytes=file_bytes + wal_bytes, items=1,
                              details={"tables": len(tables), "file_bytes": file_bytes,
                                       "wal_bytes": wal_bytes})

    @contextmanager
    def capture(self, context: CaptureContext) -> Iterator[Capture]:
        try:
            workdir = Path(tempfile.mkdtemp(prefix="vault-sqlite-", dir=context.scratch_dir))
        except OSError as error:
            raise SqliteError(path=str(self.path), detail="cannot make the scratch copy in "
                              f"{context.scratch_dir}: {error.strerror or error}") from error
        try:
            copy_path = workdir / "copy.db"
            stat = os.stat(self.path) if self.path.exists() else None
            source_facts = take_copy(self.path, copy_path, self.copy, self.busy)
            taken_at = source_facts.pop("read_at")
            entity_facts = self._entity_facts(copy_path)
            if self.secret_fields is not None and self.secret_fields.tables:
                entity_facts["secret_fields"] = protect_copy(
                    copy_path, self.secret_fields, context.sealer, self.name)
            meta = {**entity_facts, **source_facts, **copy_facts(copy_path), "path": str(self.path),
                    "item": self.item_path, "copy": self.copy,
                    "file_mode": (stat.st_mode & 0o7777) if stat else 0o600,
                    "sqlite_version": sqlite3.sqlite_version}
            item = SourceItem(
                path=self.item_path,
                open=_file_opener(copy_path),
                size_hint=copy_path.stat().st_size,
                mode=0o100000 | ((stat.st_mode & 0o7777) if stat else 0o600),
                mtime_ns=stat.st_mtime_ns if stat else 0,
            )
            yield Capture(items=[item], meta=meta, taken_at=taken_at)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _entity_facts(self, copy_path: Path) -> dict[str, Any]:
        """Cut the copy down to the selected entities (a selective backup), then count
        every entity's rows and date range for the snapshot's meta."""
        if not self.entities:
            return {}
        conn = sqlite3.connect(copy_path, isolation_level=None)
        try:
            facts: dict[str, Any] = {}
            if self.selection is not None:
                kept = keep_only(conn, self.entities, self.selection)
                facts["selection"] = {"entity": self.selection.entity,
                                      "ids": [str(i) for i in self.selection.ids],
                                      "rows": kept}
            facts["entities"] = entity_meta(conn, self.entities)
            return facts
        except (sqlite3.Error, ValueError) as error:
            raise SqliteError(path=str(self.path),
                              detail=f"entities: {error}") from error
        finally:
            conn.close()

    def restore(self, stored: StoredItems, request: SourceRestoreRequest) -> SourceRestoreResult:
        if request.target and request.target.lower().startswith(_URL_PREFIX):
            # A target given as a URL (`--target sqlite:///new.db`) is that URL's file.
            request = dataclasses.replace(request, target=request.target[len(_URL_PREFIX):])
        target = Path(request.target).absolute() if request.target else self.path
        # Sealed secrets opened, redacted ones given the target's live values (sqlite_secrets).
        with revealed(stored, request.sealer, target, request.scratch_dir, self.name) as whole:
            return restore_database(whole, request, default_target=self.path, busy=self.busy,
                                    entities=self.entities)

    def for_target(self, request: SourceRestoreRequest,
                   stored: StoredItems | None = None) -> SqliteSource:
        """The source that captures what `request` would restore into (the target file,
        or this source's own), so a snapshot of it taken first can undo the restore."""
        target = request.target or str(self.path)
        if target.lower().startswith(_URL_PREFIX):
            target = target[len(_URL_PREFIX):]
        return SqliteSource(self.name, Path(target).absolute(), copy=self.copy,
                            busy=self.busy, entities=self.entities,
                            secret_fields=self.secret_fields)

    @property
    def item_path(self) -> str:
        return self.path.name or "database.sqlite"


def _file_opener(path: Path) -> Callable[[], AbstractContextManager[BinaryIO]]:
    @contextmanager
    def open_file() -> Iterator[BinaryIO]:
        with open(path, "rb") as stream:
            yield stream

    return open_file


# --- taking the copy ----------------------------------------------------------------------


def take_copy(source: Path, target: Path, method: CopyMethod,
              busy: BusyPolicy) -> dict[str, Any]:
    """Copy `source` as of one commit into the new file `target`; return facts about the
    source (journal mode, page size) read in the same transaction, and `read_at`: when
    the copy's read transaction saw the database (its point in time)."""
    conn = connect_readonly(source, busy.attempt_timeout)
    try:
        if method == "vacuum":
            facts = with_busy_retry(lambda: _source_facts(conn), source, busy)
            facts["read_at"] = datetime.now(UTC)  # the VACUUM reads from about here
            with_busy_retry(lambda: _vacuum_into(conn, target), source, busy)
            return facts
        facts = with_busy_retry(lambda: _begin_read(conn), source, busy)
        facts["read_at"] = datetime.now(UTC)  # just after its first read: its snapshot
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            copy.execute("PRAGMA synchronous = OFF")  # a scratch file: a crash just drops it
            conn.backup(copy)  # all pages in one step, inside our read transaction
        finally:
            copy.close()
        conn.execute("COMMIT")
        return facts
    except sqlite3.DatabaseError as error:
        raise translate_open_error(error, source) from error
    finally:
        conn.close()


def _begin_read(conn: sqlite3.Connection) -> dict[str, Any]:
    """Open a read transaction and take its shared lock now (a deferred BEGIN locks at the
    first read), so a busy database fails here, where it is retried, and not inside
    `backup()`, whose C loop would wait on a lock forever."""
    conn.execute("BEGIN")
    try:
        return _source_facts(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _source_facts(conn: sqlite3.Connection) -> dict[str, Any]:
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return {"journal_mode": str(pragma(conn, "journal_mode")),
            "source_page_size": int(pragma(conn, "page_size"))}


def _vacuum_into(conn: sqlite3.Connection, target: Path) -> None:
    target.unlink(missing_ok=True)  # a busy attempt may leave a partial file
    conn.execute("VACUUM INTO ?", (str(target),))


def copy_facts(copy_path: Path) -> dict[str, Any]:
    """What the snapshot records about the copy: sizes, format and rows per table."""
    conn = open_read_only(copy_path, isolation_level=None)
    try:
        return {"page_size": int(pragma(conn, "page_size")),
                "page_count": int(pragma(conn, "page_count")),
                "encoding": str(pragma(conn, "encoding")),
                "user_version": int(pragma(conn, "user_version")),
                "file_bytes": copy_path.stat().st_size,
                "tables": table_row_counts(conn)}
    finally:
        conn.close()


# --- registration -------------------------------------------------------------------------


def source_from_config(entry: Any) -> SqliteSource:
    """The source for a validated `vault.sources.sqlite.config.SqliteSourceConfig`."""
    busy = BusyPolicy(retries=entry.busy_retries, seconds=entry.busy_seconds)
    entities = tuple(Entity(e.name, e.collection, e.parent, e.key, e.date_field)
                     for e in entry.entities)
    fields = SecretFields(secret_tables_from_config(entry.secret_tables), entry.secrets,
                          tuple(entry.secret_keys))
    return SqliteSource(entry.name, entry.path, copy=entry.copy_method, busy=busy,
                        entities=entities, secret_fields=fields)


def source_from_url(url: str) -> SqliteSource:
    """`sqlite:///srv/app/app.db`: everything after `sqlite://` is the path, taken as it
    is (no percent-decoding, so any file name works); it must be absolute."""
    path = url[len(_URL_PREFIX):] if url.lower().startswith(_URL_PREFIX) else ""
    if not path.startswith("/"):
        raise UsageError(f"a sqlite source needs an absolute path, like "
                         f"sqlite:///srv/app/app.db (not {url!r})")
    return SqliteSource(name_for(Path(path)), path)


def name_for(path: Path) -> str:
    """A source name (lowercase letters, digits, '_', '.', '-') from a database's file name."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", path.stem.lower()).lstrip("._-")
    return name or "sqlite"


register("sqlite", from_config=source_from_config, schemes=("sqlite",),
         from_url=source_from_url, browser=BROWSER, target_is_path=True)
