"""Apply the numbered SQL files shipped as the package data `vault/migrations/`.

They live in the repository's top-level `migrations/`; `src/vault/migrations` is a symlink
to it, so a source checkout (editable install) and a wheel both find them with
`importlib.resources`, without any path into the checkout.

Like sqlite-utils' `Migrations`: files run in version order, each in its own transaction,
and each is recorded in `schema_migrations` in that same transaction, so a crash leaves
either the whole step or none of it. Several processes may open a fresh journal at once:
each step takes the write lock (`BEGIN IMMEDIATE`) and re-checks whether another opener
applied it meanwhile, so no step ever runs twice.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable

from vault.errors import JournalError

MIGRATIONS_DIR: Traversable = files("vault") / "migrations"

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Traversable

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"))


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements.

    `executescript()` would be simpler, but it commits any open transaction first, which
    would break the one-transaction-per-step rule. `sqlite3.complete_statement` knows that
    the semicolons inside a trigger's BEGIN ... END do not end the statement.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                statements.append(pending.strip())
            pending = ""
    if _has_code(pending):
        raise JournalError(path="migrations", detail=f"incomplete statement: {pending.strip()}")
    return statements


def _has_code(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())


def discover(directory: Traversable | None = None) -> list[Migration]:
    """The migrations in `directory`, checked to be numbered 1..N without gaps."""
    directory = directory or MIGRATIONS_DIR
    if not directory.is_dir():
        raise JournalError(
            path=str(directory),
            detail="migrations directory not found (a vault package without its "
            "vault/migrations data: reinstall vault)",
        )
    found: list[Migration] = []
    sql_files = [p for p in directory.iterdir() if p.name.endswith(".sql")]
    for path in sorted(sql_files, key=lambda p: p.name):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise JournalError(path=str(path), detail="migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise JournalError(path=str(directory), detail=f"migration versions {versions} not 1..N")
    return found


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists is None:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def apply_migrations(conn: sqlite3.Connection,
                     directory: Traversable | None = None) -> list[int]:
    """Bring the schema up to date; returns the versions this call applied.

    `conn` must be in autocommit mode (`isolation_level=None`) with no open transaction.
    Raises JournalError if the journal was migrated by a newer vault than this one.
    """
    migrations = discover(directory)
    known = {m.version for m in migrations}
    done = applied_versions(conn)  # lock-free fast path: usually nothing is pending
    newer = sorted(done - known)
    if newer:
        raise JournalError(
            path=str(directory or MIGRATIONS_DIR),
            detail=f"the journal has schema versions {newer} this vault does not know; "
            "upgrade vault",
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version not in done and _apply_one(conn, migration):
            applied.append(migration.version)
    return applied


def _apply_one(conn: sqlite3.Connection, migration: Migration) -> bool:
    statements = migration.statements()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_BOOTSTRAP)
        # Re-check under the write lock: a concurrent opener may have applied it already.
        if migration.version in applied_versions(conn):
            conn.execute("ROLLBACK")
            return False
        for statement in statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, datetime.now(UTC).isoformat()),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True
