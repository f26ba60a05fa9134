"""The journal spool: events kept while the journal cannot be written, appended later
with the chain intact, exactly once (docs/journal.md#the-spool)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from vault.errors import JournalError
from vault.journal import BackupRequested, BackupStarted, Journal
from vault.journal.spool import JournalSpool, SpooledRow


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def _spool_file(spool_dir: Path, journal_path: Path, rows: list[SpooledRow]) -> Path:
    """A spool file as a process that has since ended left it."""
    spool = JournalSpool(journal_path, [spool_dir])
    written = spool.keep(rows, "database or disk is full")
    dead = written.with_name(f"{spool.key}-{_dead_pid()}-0badc0de.jsonl")
    written.rename(dead)
    return dead


def _row(job: str, event: BackupRequested | BackupStarted, when: str) -> SpooledRow:
    payload = event.model_dump(mode="json")
    return SpooledRow(job, event.type_name(), event.schema_version, payload, when,
                      "database or disk is full")


def test_spooled_events_are_appended_once_with_their_time(tmp_path: Path) -> None:
    path, spool_dir = tmp_path / "journal.db", tmp_path / "spool"
    with Journal(path) as journal:
        journal.append("job-a", BackupRequested(job_id="job-a", repository="/r", paths=["/x"],
                                                      tags=[], options={}))
    rows = [_row("job-a", BackupStarted(job_id="job-a", repo_id="r1", parent=None),
                 "2026-01-02T03:04:05.000000Z")]
    spooled = _spool_file(spool_dir, path, rows)
    with spooled.open("ab") as torn:
        torn.write(b'{"stream_id": "job-a", "ty')  # killed mid-write: never happened

    with Journal(path, spool=JournalSpool(path, [spool_dir])) as journal:
        events = journal.read()
        assert journal.verify().ok
    assert [e.type for e in events] == ["BackupRequested", "BackupStarted",
                                        "JournalSpoolReplayed"]
    assert events[1].stream_version == 2
    assert events[1].recorded_at.isoformat().startswith("2026-01-02T03:04:05")
    assert events[2].payload["events"] == 1
    assert list(spool_dir.iterdir()) == []

    # A replayer killed after its commit, before removing the file: not appended twice.
    spooled.write_bytes(b"".join(json.dumps(r.__dict__).encode() + b"\n" for r in rows))
    with Journal(path, spool=JournalSpool(path, [spool_dir])) as journal:
        assert len(journal.read()) == 3
    assert list(spool_dir.iterdir()) == []


def test_a_live_writers_spool_file_is_left_alone(tmp_path: Path) -> None:
    path, spool_dir = tmp_path / "journal.db", tmp_path / "spool"
    Journal(path).close()
    mine = JournalSpool(path, [spool_dir])
    mine.keep([_row("job-b", BackupStarted(job_id="job-b", repo_id="r1", parent=None),
                    "2026-01-02T03:04:05.000000Z")], "disk I/O error")
    with Journal(path, spool=JournalSpool(path, [spool_dir])) as journal:
        assert journal.read() == []  # this process is still running: it may write more
    assert mine.file is not None and mine.file.exists()


def test_shared_or_foreign_spool_directories_are_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    spool = JournalSpool(tmp_path / "journal.db", [shared, link])
    with pytest.raises(JournalError, match="no spool directory is usable"):
        spool.keep([_row("job-c", BackupStarted(job_id="job-c", repo_id="r", parent=None),
                         "2026-01-02T03:04:05.000000Z")], "disk full")
    assert list(shared.iterdir()) == [] and list((tmp_path / "elsewhere").iterdir()) == []
