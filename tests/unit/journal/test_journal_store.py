"""Appending and reading the journal: real SQLite files, assertions on the stored rows."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from vault.errors import JournalError, StaleStreamVersion
from vault.foundation.actor import Actor
from vault.journal import (
    GENESIS_HASH,
    BackupProgressed,
    BackupRequested,
    BackupStarted,
    CommandFailed,
    Event,
    Journal,
    KeyAdded,
)


def _requested(job_id: str = "j1", options: dict[str, object] | None = None) -> BackupRequested:
    return BackupRequested(
        job_id=job_id, repository="/srv/repo", paths=["/etc"], tags=["t"], options=options or {}
    )


def _count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def test_append_stores_every_column(journal: Journal, journal_path: Path) -> None:
    recorded = journal.append("job-j1", _requested(options={"exclude": ["*.tmp"], "n": 1.5}))

    conn = sqlite3.connect(journal_path)
    row = conn.execute("SELECT * FROM events").fetchone()
    seq, stream_id, version, type_, schema, payload, at, actor, prev_hash, hash_ = row
    assert (seq, stream_id, version, type_, schema) == (1, "job-j1", 1, "BackupRequested", 1)
    assert json.loads(payload) == {
        "job_id": "j1",
        "repository": "/srv/repo",
        "paths": ["/etc"],
        "tags": ["t"],
        "options": {"exclude": ["*.tmp"], "n": 1.5},
        "source_type": "files",
        "source": None,
        "group_id": None,
    }
    assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"))
    assert json.loads(actor) == {"user": "alice", "uid": 1000, "host": "nas", "ssh_client": None}
    assert at.endswith("Z") and len(at) == len("2024-01-01T00:00:00.000000Z")
    assert prev_hash == GENESIS_HASH
    assert hash_ == recorded.hash
    assert recorded.recorded_at == datetime.fromisoformat(at)
    assert recorded.recorded_at.tzinfo is not None


def test_read_round_trips_the_event(alice: Actor, journal: Journal) -> None:
    sent = _requested(options={"nested": {"a": [1, 2]}})
    journal.append("job-j1", sent)

    (got,) = journal.read()
    assert got.event == sent
    assert got.payload == sent.model_dump(mode="json")
    assert got.actor == alice
    assert (got.seq, got.stream_version, got.type) == (1, 1, "BackupRequested")


def test_streams_number_their_own_versions(journal: Journal) -> None:
    journal.append("job-a", _requested("a"))
    journal.append("job-b", _requested("b"))
    journal.append("job-a", BackupStarted(job_id="a", repo_id="r", parent=None))

    assert [(e.seq, e.stream_version) for e in journal.stream("job-a")] == [(1, 1), (3, 2)]
    assert [(e.seq, e.stream_version) for e in journal.stream("job-b")] == [(2, 1)]
    assert journal.head_seq() == 3
    assert journal.head() == (3, journal.read()[-1].hash)


def test_empty_journal_head_is_genesis(journal: Journal) -> None:
    assert journal.head() == (0, GENESIS_HASH)
    assert journal.read() == []


def test_expected_version_conflict_writes_nothing(journal: Journal, journal_path: Path) -> None:
    journal.append("job-a", _requested("a"), expected_version=0)
    journal.append("job-a", BackupStarted(job_id="a", repo_id="r", parent=None), expected_version=1)

    # A second writer that also read version 1 loses.
    with pytest.raises(StaleStreamVersion) as caught:
        journal.append(
            "job-a", CommandFailed(command="x", error_kind="E", message="m"), expected_version=1
        )

    assert caught.value.fields["actual"] == 2
    assert "stream job-a is at version 2, not 1" in str(caught.value)
    assert _count(journal_path) == 2
    assert [e.type for e in journal.stream("job-a")] == ["BackupRequested", "BackupStarted"]


def test_expected_version_zero_means_new_stream(journal: Journal) -> None:
    journal.append("job-a", _requested("a"))
    with pytest.raises(StaleStreamVersion):
        journal.append("job-a", _requested("a"), expected_version=0)


def test_append_many_is_one_transaction(journal: Journal, journal_path: Path) -> None:
    good = _requested("a")
    # An invalid event (built without validation) spoils the whole batch, not just itself.
    bad = KeyAdded.model_construct(repo_id="r", key_id=None, label="laptop")  # type: ignore[arg-type]
    with pytest.raises(JournalError):
        journal.append_many([("job-a", good), ("repo", bad)])
    assert _count(journal_path) == 0

    recorded = journal.append_many([("job-a", good), ("job-a", good), ("job-b", good)])
    assert [(r.seq, r.stream_id, r.stream_version) for r in recorded] == [
        (1, "job-a", 1),
        (2, "job-a", 2),
        (3, "job-b", 1),
    ]
    assert recorded[1].prev_hash == recorded[0].hash
    assert journal.verify().ok


def test_secret_keys_are_refused_even_past_validation(journal: Journal, journal_path: Path) -> None:
    # model_construct skips pydantic validation; the store screens the payload again.
    sneaky = BackupRequested.model_construct(
        job_id="a", repository="/r", paths=[], tags=[], options={"db": {"PASSWORD": "hunter2"}}
    )
    with pytest.raises(JournalError, match=r"options\.db\.PASSWORD"):
        journal.append("job-a", sneaky)
    assert _count(journal_path) == 0


def test_events_that_would_not_read_back_are_refused(journal: Journal, journal_path: Path) -> None:
    # JSON has no infinity; pydantic would quietly store null, which rate_bps refuses.
    fields: dict[str, Any] = {
        "job_id": "a",
        "phase": "p",
        "bytes_done": 0,
        "bytes_total": None,
        "items_done": 0,
        "items_total": None,
        "eta_seconds": None,
    }
    with pytest.raises(ValidationError):
        BackupProgressed(rate_bps=float("inf"), **fields)
    with pytest.raises(JournalError, match="BackupProgressed is not valid"):
        journal.append("job-a", BackupProgressed.model_construct(rate_bps=float("nan"), **fields))
    assert _count(journal_path) == 0


def test_read_filters(alice: Actor, bob: Actor, journal_path: Path) -> None:
    with Journal(journal_path, actor=alice) as as_alice, Journal(journal_path, actor=bob) as as_bob:
        as_alice.append("job-a", _requested("a"))
        as_bob.append("job-b", _requested("b"))
        as_alice.append("job-a", BackupStarted(job_id="a", repo_id="r", parent=None))
        as_bob.append("cli", CommandFailed(command="init", error_kind="E", message="m"))
        journal = as_alice
        everything = journal.read()

    with Journal(journal_path, actor=alice) as journal:
        assert [e.seq for e in journal.read(actor="bob")] == [2, 4]
        assert [e.seq for e in journal.read(types=["BackupStarted", "CommandFailed"])] == [3, 4]
        assert [e.seq for e in journal.read(stream_id="job-a")] == [1, 3]
        assert [e.seq for e in journal.read(after_seq=2)] == [3, 4]
        assert [e.seq for e in journal.read(limit=2, descending=True)] == [4, 3]
        assert [e.seq for e in journal.read(types=[])] == []
        third = everything[2].recorded_at
        assert [e.seq for e in journal.read(since=third)] == [3, 4]
        assert [e.seq for e in journal.read(until=third)] == [1, 2, 3]
        assert [e.seq for e in journal.read(since=third, until=third)] == [3]
        assert journal.read(since=third + timedelta(days=1)) == []
        # A non-UTC aware datetime means the same instant.
        local = third.astimezone(UTC).astimezone(datetime.now().astimezone().tzinfo)
        assert [e.seq for e in journal.read(since=local)] == [3, 4]
        assert journal.read(actor="bob")[0].actor == bob


def test_triggers_refuse_update_and_delete(journal: Journal, journal_path: Path) -> None:
    journal.append("job-a", _requested("a"))
    conn = sqlite3.connect(journal_path)
    with pytest.raises(sqlite3.IntegrityError, match="events are append-only"):
        conn.execute("UPDATE events SET payload = '{}'")
    with pytest.raises(sqlite3.IntegrityError, match="events are append-only"):
        conn.execute("DELETE FROM events")
    assert _count(journal_path) == 1


def test_files_are_private_and_wal(alice: Actor, tmp_path: Path) -> None:
    path = tmp_path / "new-state-dir" / "journal.db"
    with Journal(path, actor=alice) as journal:
        journal.append("job-a", _requested("a"))
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
            assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_readonly_reads_but_refuses_writes(
    alice: Actor, journal: Journal, journal_path: Path
) -> None:
    journal.append("job-a", _requested("a"))
    with Journal(journal_path, actor=alice, readonly=True) as reader:
        assert [e.seq for e in reader.read()] == [1]
        assert reader.verify().ok
        with pytest.raises(JournalError, match="read-only"):
            reader.append("job-a", _requested("a"))
    assert _count(journal_path) == 1


def test_readonly_on_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal here"):
        Journal(tmp_path / "absent.db", readonly=True)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(JournalError, match="not an initialized vault journal"):
        Journal(other, readonly=True)


def test_not_a_database_is_a_journal_error(alice: Actor, tmp_path: Path) -> None:
    garbage = tmp_path / "journal.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match=r"journal .*journal\.db: file is not a database"):
        Journal(garbage, actor=alice)


def test_a_long_read_does_not_block_a_writer(
    alice: Actor, bob: Actor, journal_path: Path, workload: Callable[[], list[tuple[str, Event]]]
) -> None:
    with Journal(journal_path, actor=alice) as writer:
        for _ in range(40):
            writer.append_many(workload())
        before = writer.head_seq()

        with Journal(journal_path, actor=alice, readonly=True) as reader:
            rows = reader.iter_events()
            seen = [next(rows).seq for _ in range(10)]  # the read is now open mid-way
            # A writer blocked by the reader would wait out this timeout and raise.
            with Journal(journal_path, actor=bob, busy_timeout_ms=200) as other:
                other.append("job-late", _requested("late"))
            seen += [event.seq for event in rows]

        # The open read kept its snapshot: it saw every old event and not the new one.
        assert seen == list(range(1, before + 1))
        assert writer.head_seq() == before + 1
        assert writer.read(stream_id="job-late")[0].actor == bob
