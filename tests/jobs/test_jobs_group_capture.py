"""Queued and scheduled groups are captured at one moment too: a real `vault worker` runs
`vault backup --queue --group` and a `[[schedules]]` run of files + SQLite + PostgreSQL
while writers keep changing both databases and the file tree takes seconds to stream.

Each member stays a job of its own (its own stream, `vault jobs` row and notice), yet the
members' `captured_at` lie close together although the files member is streamed first,
and each restored database holds nothing written after its `captured_at`. A worker
killed mid-group leaves every member it took interrupted; the next one retries them, again
together, to exactly one snapshot each.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "sources"))  # the servers' fixtures
from pg_server import APP_USER, PgServer, missing_binary, running_server
from test_group_capture import Writers
from test_jobs_notify import hook  # noqa: F401  (the webhook fixture)
from test_jobs_schedules import journal_as_added_at, payloads, wait_for
from test_jobs_worker import MiB, Workers, follow, job_events, snapshots

from vault.journal.projections.jobs import read_jobs

needs_pg = pytest.mark.skipif(missing_binary() is not None,
                              reason=f"PostgreSQL server binary missing: {missing_binary()}")

MEMBERS = {"uploads", "app-db", "shop"}


class App:
    """Files (slow to stream), a SQLite and a PostgreSQL database with a `ticks` table, and
    the vault.toml naming them as the group `app`."""

    def __init__(self, vault: Any, fs: Any, root: Path, pg: PgServer,
                 schedule: str = "") -> None:
        self.vault, self.pg = vault, pg
        self.files, self.db = root / "uploads", root / "app.db"
        for i in range(16):  # read, chunked and encrypted after the captures open
            fs.write_random(self.files / f"part{i}.bin", 12 * MiB, seed=60 + i)
        with sqlite3.connect(self.db) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE ticks (id INTEGER PRIMARY KEY, at REAL NOT NULL)")
        conn.close()
        self.pg_db = pg.create_database("shop")
        pg.psql("CREATE TABLE ticks (id serial PRIMARY KEY, at double precision NOT NULL)",
                db=self.pg_db, user=APP_USER)
        vault.env.env["SHOP_PG_PASSWORD"] = pg.app_password  # the worker's environment
        config = vault.env.home / "config" / "vault" / "vault.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'''
[[sources]]
type = "files"
name = "uploads"
paths = ["{self.files}"]

[[sources]]
type = "sqlite"
name = "app-db"
path = "{self.db}"

[[sources]]
type = "postgresql"
name = "shop"
host = "127.0.0.1"
port = {pg.port}
dbname = "{self.pg_db}"
user = "app"
password = {{ env = "SHOP_PG_PASSWORD" }}

[[groups]]
name = "app"
sources = ["uploads", "app-db", "shop"]
{schedule}
''')

    def writers(self) -> Writers:
        return Writers(self.db, self.pg, self.pg_db)

    def members(self, job_ids: set[str]) -> dict[str, dict[str, Any]]:
        """The snapshots of those jobs, by source label (exactly one each)."""
        taken = [s for s in snapshots(self.vault) if s["job_id"] in job_ids]
        members = {s["source"]["label"]: s for s in taken}
        assert len(taken) == len(members) and set(members) == MEMBERS, taken
        return members

    def assert_captured_together(self, members: dict[str, dict[str, Any]],
                                 what: str) -> float:
        """The members' points lie close together though the files took seconds to
        stream; each restored database holds nothing written after its point. Returns
        the spread."""
        captured = {name: _epoch(s["captured_at"]) for name, s in members.items()}
        spread = max(captured.values()) - min(captured.values())
        files_stream = _epoch(members["uploads"]["time"]) - captured["uploads"]
        print(f"\n{what}: captured_at spread {spread:.3f}s; files streamed "
              f"{files_stream:.3f}s; "
              f"{ {n: round(t - min(captured.values()), 3) for n, t in captured.items()} }")
        # An order, not a timing (it holds on a fast or a loaded machine): the databases'
        # points were taken while the files streamed; one after another, they would come
        # after the files' end.
        files_end = _epoch(members["uploads"]["time"])
        assert all(captured[db] < files_end for db in ("app-db", "shop")), \
            (captured, files_end)
        assert spread < files_stream, (captured, files_stream)
        for name, last in (("app-db", self._restored_sqlite(members["app-db"])),
                           ("shop", self._restored_postgres(members["shop"]))):
            if last is None:
                continue  # no writer had written yet at that point
            assert last <= captured[name] + 0.05, (name, last, captured[name])
        return spread

    def _restored_sqlite(self, snapshot: dict[str, Any]) -> float | None:
        out = self.vault.env.root / f"restored-{snapshot['id'][:8]}.db"
        self.vault.restore("--yes", snapshot["id"][:8], "--target", out)
        restored = sqlite3.connect(out)
        try:
            rows = restored.execute("SELECT count(*), max(at) FROM ticks").fetchone()
        finally:
            restored.close()
        return None if rows[0] == 0 else float(rows[1])

    def _restored_postgres(self, snapshot: dict[str, Any]) -> float | None:
        target = f"shop_{snapshot['id'][:8]}"
        copied = self.vault.json("restore", snapshot["id"][:8], "--target", target)
        assert copied.code == 0, copied.last
        last = self.pg.psql("SELECT max(at) FROM ticks", db=target)
        return float(last) if last else None


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def pg() -> Iterator[PgServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def workers(vault_repo: Any, tmp_path: Path) -> Iterator[Workers]:
    logs = tmp_path / "logs"
    logs.mkdir()
    started = Workers(vault_repo, logs)
    yield started
    started.stop_all()


def queue_group(vault: Any) -> list[str]:
    """`vault backup --queue --group app`: one queued job per member."""
    result = vault.json("backup", "--queue", "--group", "app")
    assert result.code == 0, (result.last, result.stderr)
    assert result.summary["status"] == "queued" and result.summary["group_id"]
    jobs = [r for r in result.records if r["type"] == "job"]
    assert sorted(j["summary"] for j in jobs) == sorted(f"backup {m}" for m in MEMBERS)
    assert [j["job_id"] for j in jobs] == result.summary["job_ids"]
    return list(result.summary["job_ids"])


@needs_pg
def test_a_queued_group_is_captured_at_one_moment(vault_repo: Any, workers: Workers,
                                                  fs: Any, tmp_path: Path,
                                                  pg: PgServer) -> None:
    app = App(vault_repo, fs, tmp_path, pg)
    workers.start("--workers", "2")
    with app.writers():
        time.sleep(0.3)
        job_ids = queue_group(vault_repo)
        for job_id in job_ids:
            done = follow(vault_repo, job_id, workers)
            assert done["event"] == "BackupCompleted", done
        time.sleep(0.3)
    members = app.members(set(job_ids))
    app.assert_captured_together(members, "queued group")

    # Each member is a backup job of its own, claimed once, by the worker that ran them
    listed = {j["job_id"]: j for j in vault_repo.query("jobs").summary["jobs"]}
    assert {listed[j]["status"] for j in job_ids} == {"completed"}
    claimers = set()
    for job_id in job_ids:
        kinds = [e["type"] for e in job_events(vault_repo, job_id)]
        assert kinds[:3] == ["BackupRequested", "JobQueued", "JobClaimed"], kinds
        assert kinds.count("JobClaimed") == 1 and kinds[-1] == "BackupCompleted", kinds
        claimers.add(next(e for e in job_events(vault_repo, job_id)
                          if e["type"] == "JobClaimed")["payload"]["pid"])
    assert claimers == {workers.procs[0].pid}
    for name in ("app-db", "shop"):  # stored after the files: their jobs said they waited
        kinds = [(e["type"], e["payload"].get("phase"))
                 for e in job_events(vault_repo, members[name]["job_id"])]
        assert kinds.index(("BackupProgressed", "waiting")) \
            < kinds.index(("BackupStarted", None)), kinds
    group_ids = {s["group_id"] for s in members.values()}
    assert len(group_ids) == 1 and None not in group_ids


@needs_pg
def test_a_scheduled_group_run_is_captured_at_one_moment(vault_repo: Any, workers: Workers,
                                                         fs: Any, tmp_path: Path,
                                                         pg: PgServer) -> None:
    now = datetime.now(UTC)
    due = (now - timedelta(minutes=10)).replace(second=0, microsecond=0)
    app = App(vault_repo, fs, tmp_path, pg, schedule=f"""
[[schedules]]
name = "nightly"
cron = "{due.minute} {due.hour} * * *"
sources = ["uploads", "app-db", "shop"]
catch_up = true
""")
    journal_as_added_at(vault_repo, "nightly", now - timedelta(minutes=30))
    with app.writers():
        time.sleep(0.3)
        workers.start("--schedule-every", "0.5")
        [done] = wait_for(lambda: payloads(vault_repo, "ScheduleRunCompleted"),
                          "the run's end", workers, timeout=180)
        time.sleep(0.3)
    assert done["status"] == "completed", done
    [run] = payloads(vault_repo, "ScheduleRunQueued")
    assert sorted(run["sources"]) == sorted(MEMBERS) and len(run["job_ids"]) == 3
    members = app.members(set(run["job_ids"]))
    app.assert_captured_together(members, "scheduled group")
    assert {s["group_id"] for s in members.values()} == {run["group_id"]}
    assert all("schedule:nightly" in s["tags"] for s in members.values())
    assert done["jobs"] == {job_id: "completed" for job_id in run["job_ids"]}


def _wait_until_streaming(vault: Any, job_ids: list[str], timeout: float = 60) -> None:
    """Until the worker has taken the whole group and the files member streams."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for j in job_ids for r in read_jobs(vault.env.journal_path, job_id=j)]
        if rows and all(r["status"] == "running" for r in rows) \
                and any(r["started_at"] is not None for r in rows):
            return
        assert time.monotonic() < deadline, rows
        time.sleep(0.005)


@needs_pg
@pytest.mark.slow
def test_a_killed_workers_group_is_retried_together(vault_repo: Any, workers: Workers,
                                                    fs: Any, tmp_path: Path,
                                                    pg: PgServer) -> None:
    app = App(vault_repo, fs, tmp_path, pg)
    doomed = workers.start()
    with app.writers():
        time.sleep(0.3)
        job_ids = queue_group(vault_repo)
        _wait_until_streaming(vault_repo, job_ids)
        doomed.kill()
        doomed.wait()
        assert not {s["job_id"] for s in snapshots(vault_repo)} & set(job_ids), \
            "a member finished before the kill; make the files larger"
        listed = {j["job_id"]: j["status"] for j in vault_repo.query("jobs").summary["jobs"]}
        assert {listed[j] for j in job_ids} == {"running"}  # all taken by the dead worker

        survivor = workers.start()
        for job_id in job_ids:
            done = follow(vault_repo, job_id, workers)
            assert done["event"] == "BackupCompleted", done
        time.sleep(0.3)
    members = app.members(set(job_ids))
    app.assert_captured_together(members, "retried group")
    for job_id in job_ids:
        events = job_events(vault_repo, job_id)
        kinds = [e["type"] for e in events]
        assert kinds.count("JobInterrupted") == 1 and kinds.count("BackupCompleted") == 1
        claims = [e["payload"] for e in events if e["type"] == "JobClaimed"]
        assert [(c["attempt"], c["pid"]) for c in claims] == [(1, doomed.pid),
                                                              (2, survivor.pid)]
    listed = {j["job_id"]: j for j in vault_repo.query("jobs").summary["jobs"]}
    assert {(listed[j]["status"], listed[j]["attempt"]) for j in job_ids} == {
        ("completed", 2)}


def test_a_member_that_cannot_be_captured_fails_alone_with_its_own_notice(
        vault_repo: Any, workers: Workers, fs: Any, tmp_path: Path,
        hook: Any) -> None:  # noqa: F811
    url, received = hook
    src, db = tmp_path / "docs", tmp_path / "app.db"
    fs.write_random(src / "a.bin", 300_000, seed=7)
    sqlite3.connect(db).close()
    config = vault_repo.env.home / "config" / "vault" / "vault.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'''
[[notifications]]
type = "webhook"
name = "ops"
url = "{url}"
on = ["success", "failure"]

[[sources]]
type = "files"
name = "docs"
paths = ["{src}"]

[[sources]]
type = "sqlite"
name = "app-db"
path = "{db}"

[[groups]]
name = "app"
sources = ["docs", "app-db"]
''')
    queued = vault_repo.json("backup", "--queue", "--group", "app")
    assert queued.code == 0, queued.last
    docs_job, db_job = queued.summary["job_ids"]
    db.unlink()  # gone by the time the worker captures the group
    workers.start()
    assert follow(vault_repo, docs_job, workers)["event"] == "BackupCompleted"
    failed = follow(vault_repo, db_job, workers, expect=1)
    assert failed["event"] == "BackupFailed" and str(db) in failed["payload"]["message"]

    # taken together (one transaction), then the member whose source was gone failed alone
    claims = [next(e["seq"] for e in job_events(vault_repo, j) if e["type"] == "JobClaimed")
              for j in (docs_job, db_job)]
    assert abs(claims[0] - claims[1]) == 1, claims
    [taken] = snapshots(vault_repo)
    assert (taken["job_id"], taken["source"]["label"]) == (docs_job, "docs")
    out = tmp_path / "out"
    vault_repo.restore(f"{taken['id']}:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)
    listed = {j["job_id"]: j["status"] for j in vault_repo.query("jobs").summary["jobs"]}
    assert (listed[docs_job], listed[db_job]) == ("completed", "failed")
    wait_for(lambda: len(received) >= 2, "both notices", workers)
    by_job = {body["job_id"]: body for body in received}
    assert len(received) == 2
    assert by_job[docs_job]["trigger"] == "success"
    assert by_job[docs_job]["title"] == "backup of docs completed"
    assert by_job[db_job]["trigger"] == "failure"
    assert str(db) in by_job[db_job]["details"]["error"]
