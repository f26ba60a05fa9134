"""Schema migrations: applied once each, in order, one transaction per step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vault.errors import JournalError
from vault.foundation.actor import Actor
from vault.journal import Journal
from vault.journal.migrate import MIGRATIONS_DIR, apply_migrations, discover, split_statements

REPO_ROOT = Path(__file__).resolve().parents[3]


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir()
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def test_migrations_live_at_the_top_of_the_checkout() -> None:
    """The package data `vault/migrations` is the checkout's top-level `migrations/` (a
    symlink), file for file and byte for byte; the wheel test checks the built package."""
    top_level = sorted((REPO_ROOT / "migrations").glob("*.sql"))
    assert Path(str(MIGRATIONS_DIR)).resolve() == (REPO_ROOT / "migrations").resolve()
    found = discover()
    assert [m.path.name for m in found] == [p.name for p in top_level]
    assert [m.path.read_bytes() for m in found] == [p.read_bytes() for p in top_level]
    assert [(m.version, m.name) for m in found][:7] == [
        (1, "events"), (2, "projections"), (3, "job_queue"), (4, "snapshot_sources"),
        (5, "schedules"), (6, "prune_jobs"), (7, "snapshot_repairs"),
    ]


def test_a_new_journal_records_each_step_once(alice: Actor, journal_path: Path) -> None:
    Journal(journal_path, actor=alice).close()
    Journal(journal_path, actor=alice).close()
    conn = _connect(journal_path)
    recorded = conn.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
    assert [(v, n) for v, n, _ in recorded] == [
        (1, "events"), (2, "projections"), (3, "job_queue"), (4, "snapshot_sources"),
        (5, "schedules"), (6, "prune_jobs"), (7, "snapshot_repairs")]
    assert all(at.startswith("20") for _, _, at in recorded)
    assert apply_migrations(conn) == []
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"events", "jobs", "snapshots", "projection_checkpoints"} <= tables


def test_split_keeps_trigger_bodies_whole() -> None:
    script = """
    -- a comment only
    CREATE TABLE t (x);  -- trailing
    CREATE TRIGGER t_no_delete BEFORE DELETE ON t
    BEGIN
        SELECT RAISE(ABORT, 'no; really');
    END;
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(JournalError, match="incomplete statement"):
        split_statements("CREATE TABLE t (x)")


def test_a_failing_step_leaves_nothing_half_done(tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "migrations",
        {
            "0001_first.sql": "CREATE TABLE one (x);",
            "0002_broken.sql": "CREATE TABLE two (x);\nINSERT INTO nowhere VALUES (1);",
        },
    )
    conn = _connect(tmp_path / "db.sqlite")
    with pytest.raises(sqlite3.OperationalError, match="no such table: nowhere"):
        apply_migrations(conn, directory)
    assert not conn.in_transaction
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"one", "schema_migrations"}
    assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [(1,)]

    (directory / "0002_broken.sql").write_text("CREATE TABLE two (x);")
    assert apply_migrations(conn, directory) == [2]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.sql": "", "0003_c.sql": ""}, r"versions \[1, 3\] not 1..N"),
        ({"1_a.sql": ""}, "named NNNN_name.sql"),
    ],
)
def test_badly_numbered_migrations_are_refused(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(JournalError, match=message):
        discover(_write(tmp_path / "m", files))


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="migrations directory not found"):
        discover(tmp_path / "nope")


def test_a_journal_from_a_newer_vault_is_refused(alice: Actor, journal_path: Path) -> None:
    Journal(journal_path, actor=alice).close()
    conn = _connect(journal_path)
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', '2099-01-01')")
    conn.close()
    with pytest.raises(JournalError, match=r"schema versions \[99\] this vault does not know"):
        Journal(journal_path, actor=alice)


def test_prunes_journaled_before_0006_become_jobs(alice: Actor, journal_path: Path) -> None:
    """A journal from before migration 6 kept its prunes' events but had no job rows for
    them (its jobs table refused the kind): the migration replays them into the table."""
    from vault.journal import events as ev
    from vault.journal.projections.jobs import read_jobs

    journal = Journal(journal_path, actor=alice)
    journal.append("prune-1", ev.PruneRequested(job_id="prune-1", repository="/r",
                                                max_unused=0.05, dry_run=False))
    journal.append("prune-1", ev.PruneFailed(job_id="prune-1", error_kind="RepositoryLocked",
                                             message="locked"))
    journal.close()
    conn = _connect(journal_path)  # back to what 0005 left: no prune rows, step 6 not run
    conn.execute("DELETE FROM jobs")
    conn.execute("DELETE FROM schema_migrations WHERE version = 6")
    conn.close()
    Journal(journal_path, actor=alice).close()  # migrates, then replays into `jobs`
    [row] = read_jobs(journal_path)
    assert (row["job_id"], row["kind"], row["status"], row["error_kind"]) == (
        "prune-1", "prune", "failed", "RepositoryLocked")
