"""Tampering with the journal file directly (triggers dropped), and what verify() reports."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vault.foundation.actor import Actor
from vault.journal import GENESIS_HASH, Event, Journal, JournalVerified
from vault.journal.chain import chain_hash

COLUMNS = "seq, stream_id, stream_version, type, schema_version, payload, recorded_at, actor"


@pytest.fixture
def filled(
    alice: Actor, journal_path: Path, workload: Callable[[], list[tuple[str, Event]]]
) -> Iterator[Journal]:
    with Journal(journal_path, actor=alice) as journal:
        for stream_id, event in workload()[:20]:
            journal.append(stream_id, event)
        yield journal


def tamper(path: Path, *statements: str) -> None:
    """Run SQL the way an intruder with write access to the file would."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.close()


def test_intact_chain_verifies(filled: Journal) -> None:
    result = filled.verify()
    assert (result.ok, result.events_checked, result.first_bad_seq, result.reason) == (
        True,
        20,
        None,
        None,
    )
    assert result.to_event() == JournalVerified(
        ok=True, events_checked=20, first_bad_seq=None, reason=None
    )
    rows = filled.read()
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))


def test_edited_payload_is_found(filled: Journal, journal_path: Path) -> None:
    tamper(
        journal_path,
        "UPDATE events SET payload = json_set(payload, '$.repository', '/evil') WHERE seq = 7",
    )
    result = filled.verify()
    assert (result.ok, result.first_bad_seq, result.reason) == (
        False,
        7,
        "hash mismatch (row edited)",
    )
    assert result.events_checked == 7


def test_edited_actor_is_found(filled: Journal, journal_path: Path) -> None:
    tamper(journal_path, "UPDATE events SET actor = json_set(actor, '$.user', 'eve') WHERE seq = 3")
    assert (filled.verify().first_bad_seq, filled.verify().reason) == (
        3,
        "hash mismatch (row edited)",
    )


def test_deleted_row_is_found(filled: Journal, journal_path: Path) -> None:
    tamper(journal_path, "DELETE FROM events WHERE seq = 12")
    result = filled.verify()
    assert (result.ok, result.first_bad_seq, result.reason) == (
        False,
        13,
        "seq gap after 11 (row deleted)",
    )


def test_deleted_first_row_is_found(filled: Journal, journal_path: Path) -> None:
    tamper(journal_path, "DELETE FROM events WHERE seq = 1")
    result = filled.verify()
    assert (result.first_bad_seq, result.reason) == (2, "seq gap after 0 (row deleted)")


def test_swapped_rows_are_found(filled: Journal, journal_path: Path) -> None:
    tamper(
        journal_path,
        "UPDATE events SET seq = -5 WHERE seq = 5",
        "UPDATE events SET seq = 5 WHERE seq = 6",
        "UPDATE events SET seq = 6 WHERE seq = -5",
    )
    result = filled.verify()
    assert (result.ok, result.first_bad_seq, result.reason) == (
        False,
        5,
        "prev_hash does not link to seq 4 (rows reordered or inserted)",
    )


def _shift_up_from(seq: int) -> list[str]:
    """Make room at `seq` by moving every later row up one (via negatives: seq is unique)."""
    return [
        f"UPDATE events SET seq = -(seq + 1) WHERE seq >= {seq}",
        "UPDATE events SET seq = -seq WHERE seq < 0",
    ]


def test_inserted_row_is_found(filled: Journal, journal_path: Path) -> None:
    # A copy of row 3 slipped in at position 9.
    copy = (
        f"INSERT INTO events ({COLUMNS}, prev_hash, hash) "
        f"SELECT 9, stream_id, stream_version + 100, type, schema_version, payload, "
        f"recorded_at, actor, prev_hash, hash FROM events WHERE seq = 3"
    )
    tamper(journal_path, *_shift_up_from(9), copy)
    assert filled.head_seq() == 21
    result = filled.verify()
    assert (result.ok, result.first_bad_seq, result.reason) == (
        False,
        9,
        "prev_hash does not link to seq 8 (rows reordered or inserted)",
    )


def test_forged_well_linked_insert_breaks_the_next_link(
    alice: Actor, filled: Journal, journal_path: Path
) -> None:
    # The intruder computes a valid hash for the row they insert at 9; the original
    # row 9 (now at 10) still names the old row 8 and carries seq 9 in its hash.
    prev = filled.read()[7].hash
    fields = {
        "seq": 9,
        "stream_id": "cli",
        "stream_version": 99,
        "type": "CommandFailed",
        "schema_version": 1,
        "payload": {"command": "x", "error_kind": "E", "message": "m"},
        "recorded_at": "2024-01-01T00:00:00.000000Z",
        "actor": alice.model_dump(mode="json"),
    }
    forged = (
        f"INSERT INTO events ({COLUMNS}, prev_hash, hash) VALUES (9, 'cli', 99, "
        '\'CommandFailed\', 1, \'{"command":"x","error_kind":"E","message":"m"}\', '
        "'2024-01-01T00:00:00.000000Z', "
        '\'{"host":"nas","ssh_client":null,"uid":1000,"user":"alice"}\', '
        f"'{prev}', '{chain_hash(prev, fields)}')"
    )
    tamper(journal_path, *_shift_up_from(9), forged)
    result = filled.verify()
    assert (result.first_bad_seq, result.reason) == (
        10,
        "prev_hash does not link to seq 9 (rows reordered or inserted)",
    )


def test_truncated_tail_is_not_detectable_by_the_chain(filled: Journal, journal_path: Path) -> None:
    """The documented limit: only an anchored head() reveals a deleted last row."""
    anchored = filled.head()
    tamper(journal_path, "DELETE FROM events WHERE seq = 20")
    assert filled.verify().ok
    assert filled.head() != anchored
    assert filled.head()[0] == anchored[0] - 1
