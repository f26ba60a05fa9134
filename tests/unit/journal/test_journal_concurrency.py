"""Several OS processes writing one journal file at the same time."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from vault.foundation.actor import Actor
from vault.journal import Journal
from vault.journal.migrate import discover

# Each worker waits for the go file, so they open the fresh journal (and race to migrate
# it) and then append at the same moment.
WORKER = """
import sys, time
from pathlib import Path
from vault.foundation.actor import Actor
from vault.journal import BackupProgressed, Journal

path, name, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
with Journal(path, actor=Actor(user=name, uid=1000, host="h")) as journal:
    for i in range(count):
        stream = f"job-{name}" if i % 2 == 0 else "shared"
        event = BackupProgressed(
            job_id=name, phase="copy", bytes_done=i, bytes_total=count, items_done=i,
            items_total=count, rate_bps=1.0, eta_seconds=None,
        )
        journal.append(stream, event)
"""


def run_workers(path: Path, names: list[str], count: int) -> None:
    go = path.parent / "go"
    path.parent.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), name, str(count), str(go)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


def test_two_processes_append_a_thousand_each(alice: Actor, journal_path: Path) -> None:
    run_workers(journal_path, ["a", "b"], 1000)

    with Journal(journal_path, actor=alice, readonly=True) as journal:
        events = journal.read()
        assert [e.seq for e in events] == list(range(1, 2001))
        result = journal.verify()
        assert (result.ok, result.events_checked) == (True, 2000)
        for name in ("a", "b"):
            mine = [e for e in events if e.actor.user == name]
            assert [e.event.bytes_done for e in mine] == list(range(1000))  # type: ignore[attr-defined]
            assert [e.stream_version for e in journal.stream(f"job-{name}")] == list(range(1, 501))
        # Both wrote to "shared" without expected versions: still one gapless sequence.
        assert [e.stream_version for e in journal.stream("shared")] == list(range(1, 1001))

    conn = sqlite3.connect(journal_path)
    assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [
        (m.version,) for m in discover()
    ]
    jobs = conn.execute("SELECT job_id, status, bytes_done FROM jobs ORDER BY job_id").fetchall()
    assert jobs == [("a", "running", 999), ("b", "running", 999)]
    checkpoints = conn.execute("SELECT seq FROM projection_checkpoints").fetchall()
    assert checkpoints == [(2000,), (2000,), (2000,)]


def test_many_processes_opening_a_fresh_journal_migrate_it_once(journal_path: Path) -> None:
    run_workers(journal_path, [f"w{n}" for n in range(8)], 1)

    conn = sqlite3.connect(journal_path)
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
    assert rows.fetchall() == [(1, "events"), (2, "projections"), (3, "job_queue"),
                                (4, "snapshot_sources"), (5, "schedules"),
                                (6, "prune_jobs"), (7, "snapshot_repairs")]
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (8,)
