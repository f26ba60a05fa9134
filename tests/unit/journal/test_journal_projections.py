"""The jobs and snapshots read models: contents, exact rebuilds, catch-up, atomicity."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vault.foundation.actor import Actor
from vault.journal import (
    PROJECTIONS,
    BackupProgressed,
    BackupRequested,
    BackupStarted,
    Event,
    Journal,
    RecordedEvent,
)
from vault.journal import store as store_module
from vault.journal.projections import JobsProjection, SchedulesProjection, SnapshotsProjection

Workload = Callable[[], list[tuple[str, Event]]]
TABLES = {"jobs": "job_id", "snapshots": "snapshot_id", "schedules": "name",
          "projection_checkpoints": "name"}


def dump(path: Path) -> dict[str, Any]:
    """Every projection row as SQL literals (so 1 and 1.0 differ), plus the table schemas."""
    conn = sqlite3.connect(path)
    out: dict[str, Any] = {}
    for table, key in TABLES.items():
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        quoted = ", ".join(f"quote({c})" for c in columns)
        out[table] = conn.execute(f"SELECT {quoted} FROM {table} ORDER BY {key}").fetchall()
        schema = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? ORDER BY name", (table,)
        ).fetchall()
        out[f"schema:{table}"] = [(t, n, re.sub(r"\s+", " ", s or "")) for t, n, s in schema]
    conn.close()
    return out


def rows(path: Path, sql: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    found = [dict(row) for row in conn.execute(sql)]
    conn.close()
    return found


@pytest.fixture
def loaded(alice: Actor, journal_path: Path, workload: Workload) -> Path:
    with Journal(journal_path, actor=alice) as journal:
        for stream_id, event in workload():
            journal.append(stream_id, event)
    return journal_path


def test_jobs_follow_each_job_to_its_outcome(loaded: Path) -> None:
    jobs = {row["job_id"]: row for row in rows(loaded, "SELECT * FROM jobs")}
    assert sorted(jobs) == ["b0", "b1", "b2", "b3", "b4", "b5", "b6", "r0", "v0"]
    assert {j: (r["kind"], r["status"]) for j, r in jobs.items()} == {
        "b0": ("backup", "completed"),
        "b1": ("backup", "partial"),
        "b2": ("backup", "failed"),
        "b3": ("backup", "completed"),
        "b4": ("backup", "completed"),
        "b5": ("backup", "partial"),
        "b6": ("backup", "completed"),
        "r0": ("restore", "completed"),
        "v0": ("verify", "completed"),
    }
    b0 = jobs["b0"]
    assert b0["repository"] == "/srv/repo"
    assert b0["actor_user"] == "alice"
    assert b0["requested_at"] < b0["started_at"] < b0["finished_at"]
    assert (b0["phase"], b0["bytes_done"], b0["bytes_total"], b0["items_done"]) == (
        "copy",
        3000,
        3000,
        300,
    )
    assert b0["snapshot_id"] == "snap-0"
    assert json.loads(b0["summary"])["files_new"] == 10
    assert (jobs["b2"]["error_kind"], jobs["b2"]["error_message"]) == ("NotEnoughSpace", "full")
    assert jobs["b2"]["summary"] is None
    assert jobs["r0"]["snapshot_id"] == "snap-0"
    assert json.loads(jobs["v0"]["summary"])["ok"] is False
    last = rows(loaded, "SELECT max(seq) AS seq FROM events WHERE stream_id = 'job-v0'")
    assert jobs["v0"]["last_seq"] == last[0]["seq"]


def test_a_running_job_shows_live_progress(journal: Journal, journal_path: Path) -> None:
    journal.append(
        "job-x",
        BackupRequested(job_id="x", repository="/r", paths=["/"], tags=[], options={}),
    )
    journal.append("job-x", BackupStarted(job_id="x", repo_id="r", parent="snap-0"))
    journal.append(
        "job-x",
        BackupProgressed(
            job_id="x",
            phase="scan",
            bytes_done=10,
            bytes_total=None,
            items_done=1,
            items_total=None,
            rate_bps=2.0,
            eta_seconds=None,
            current="/etc/passwd",
        ),
    )
    (job,) = rows(journal_path, "SELECT * FROM jobs")
    assert (job["status"], job["phase"], job["bytes_done"], job["rate_bps"]) == (
        "running",
        "scan",
        10,
        2.0,
    )
    assert job["bytes_total"] is None and job["finished_at"] is None
    assert job["last_seq"] == 3


def test_snapshots_record_what_became_of_each(loaded: Path) -> None:
    snaps = {row["snapshot_id"]: row for row in rows(loaded, "SELECT * FROM snapshots")}
    # b2 failed, so there is no snap-2.
    assert {s: r["status"] for s, r in snaps.items()} == {
        "snap-0": "completed",
        "snap-1": "corrupted",
        "snap-3": "forgotten",
        "snap-4": "completed",
        "snap-5": "partial",
        "snap-6": "completed",
    }
    snap = snaps["snap-0"]
    assert (snap["repo_id"], snap["job_id"], snap["host"]) == ("repo-1", "b0", "nas")
    assert json.loads(snap["paths"]) == ["/srv/app"] and json.loads(snap["tags"]) == ["nightly"]
    assert (snap["files"], snap["dirs"], snap["bytes_stored"]) == (112, 7, 800)
    assert snap["snapshot_time"] == "2024-05-01T02:00:00Z"
    assert snap["backup_type"] == "full" and snap["duration_seconds"] == 2.5


def test_rebuild_reproduces_the_tables_exactly(bob: Actor, loaded: Path) -> None:
    before = dump(loaded)
    assert len(before["jobs"]) == 9 and len(before["snapshots"]) == 6
    with Journal(loaded, actor=bob) as journal:
        head = journal.head()
        assert journal.rebuild_projections() == 55
        assert journal.head() == head  # the rebuild itself appends nothing
    assert dump(loaded) == before


def test_rebuild_repairs_damaged_tables(alice: Actor, loaded: Path) -> None:
    before = dump(loaded)
    conn = sqlite3.connect(loaded)
    conn.execute("DELETE FROM jobs WHERE kind = 'backup'")
    conn.execute("UPDATE snapshots SET status = 'completed'")
    conn.commit()
    conn.close()
    with Journal(loaded, actor=alice) as journal:
        journal.rebuild_projections()
    assert dump(loaded) == before


def test_migration_ddl_matches_the_projection_ddl(alice: Actor, tmp_path: Path) -> None:
    """0002 creates the tables and rebuilds recreate them from code: the two must agree."""
    migrated = tmp_path / "migrated.db"
    Journal(migrated, actor=alice).close()
    conn = sqlite3.connect(tmp_path / "from_code.db")
    conn.execute("CREATE TABLE projection_checkpoints (name TEXT PRIMARY KEY, seq INTEGER)")
    for projection in (JobsProjection(), SnapshotsProjection(), SchedulesProjection()):
        projection.create(conn)
    conn.commit()
    conn.close()
    from_code, from_migration = dump(tmp_path / "from_code.db"), dump(migrated)
    for table in ("jobs", "snapshots", "schedules"):
        assert from_code[f"schema:{table}"] == from_migration[f"schema:{table}"]
        assert len(from_code[f"schema:{table}"]) == 3  # table, primary key, one index


def test_a_reset_projection_is_replayed_on_open(alice: Actor, loaded: Path) -> None:
    """What a migration that changes a projection does: drop it and forget its checkpoint."""
    before = dump(loaded)
    conn = sqlite3.connect(loaded)
    conn.execute("DROP TABLE snapshots")
    conn.execute("DELETE FROM projection_checkpoints WHERE name = 'snapshots'")
    conn.commit()
    conn.close()
    Journal(loaded, actor=alice).close()
    assert dump(loaded) == before


def test_a_projection_left_behind_catches_up_on_the_next_append(
    alice: Actor, journal_path: Path, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = workload()
    with Journal(journal_path, actor=alice) as journal:
        journal.append_many(items[:20])
        # An older vault that does not know the snapshots projection appends the rest.
        monkeypatch.setattr(store_module, "PROJECTIONS", (JobsProjection(),))
        journal.append_many(items[20:])
        monkeypatch.undo()
        behind = rows(journal_path, "SELECT * FROM projection_checkpoints ORDER BY name")
        assert [(r["name"], r["seq"]) for r in behind] == [
            ("jobs", 55), ("schedules", 20), ("snapshots", 20)]

        journal.append_many(items[:1])  # catches up inside this append's transaction
        caught_up = dump(journal_path)
        assert [row[1] for row in caught_up["projection_checkpoints"]] == ["56", "56", "56"]
        journal.rebuild_projections()
    assert caught_up == dump(journal_path)


class ExplodingProjection(JobsProjection):
    def apply(self, conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
        super().apply(conn, recorded)
        if recorded.type == "BackupStarted":
            raise RuntimeError("projection bug")


def test_a_failing_projection_rolls_back_the_append(
    journal: Journal, journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requested = BackupRequested(job_id="x", repository="/r", paths=[], tags=[], options={})
    journal.append("job-x", requested)
    monkeypatch.setattr(store_module, "PROJECTIONS", (ExplodingProjection(), *PROJECTIONS[1:]))
    with pytest.raises(RuntimeError, match="projection bug"):
        journal.append("job-x", BackupStarted(job_id="x", repo_id="r", parent=None))
    assert journal.head_seq() == 1
    (job,) = rows(journal_path, "SELECT status, last_seq FROM jobs")
    assert (job["status"], job["last_seq"]) == ("requested", 1)
    assert rows(journal_path, "SELECT seq FROM projection_checkpoints WHERE name = 'jobs'") == [
        {"seq": 1}
    ]
