"""The hash chain that makes the journal tamper-evident, and its verification.

    hash = sha256_hex(prev_hash + canonical_json({seq, stream_id, stream_version, type,
                                                  schema_version, payload, recorded_at,
                                                  actor}))

with `payload` and `actor` as parsed JSON objects and prev_hash = "0" * 64 for seq 1.
Because seq is hashed, moving a row to another position breaks its own hash, and because
each row names its predecessor's hash, deleting, reordering or inserting rows breaks the
link at the first row after the change. Verification works on raw rows, without event
models, so it also checks types this vault cannot parse.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vault.journal.events import JournalVerified, canonical_json

GENESIS_HASH = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so text order is time order


def format_time(moment: datetime) -> str:
    """UTC, microseconds, `Z`, as stored in `recorded_at`. Naive datetimes are local time."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 hex of prev_hash + the canonical JSON of a row's hashed fields."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def row_fields(row: sqlite3.Row) -> dict[str, Any]:
    """The hashed fields of a stored row."""
    return {
        "seq": row["seq"],
        "stream_id": row["stream_id"],
        "stream_version": row["stream_version"],
        "type": row["type"],
        "schema_version": row["schema_version"],
        "payload": json.loads(row["payload"]),
        "recorded_at": row["recorded_at"],
        "actor": json.loads(row["actor"]),
    }


@dataclass(frozen=True, slots=True)
class ChainVerification:
    """The outcome of `Journal.verify()`.

    `events_checked` counts the rows examined, the bad one included; checking stops there.
    """

    ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_event(self) -> JournalVerified:
        """The event that records this verification in the journal."""
        return JournalVerified(
            ok=self.ok,
            events_checked=self.events_checked,
            first_bad_seq=self.first_bad_seq,
            reason=self.reason,
        )


def check_row(row: sqlite3.Row, prev_seq: int, prev_hash: str) -> str | None:
    """Why `row` does not continue the chain ending at (prev_seq, prev_hash), or None."""
    if row["seq"] != prev_seq + 1:
        return f"seq gap after {prev_seq} (row deleted)"
    if row["prev_hash"] != prev_hash:
        return f"prev_hash does not link to seq {prev_seq} (rows reordered or inserted)"
    try:
        fields = row_fields(row)
    except json.JSONDecodeError:
        return "payload or actor is not valid JSON (row edited)"
    if chain_hash(prev_hash, fields) != row["hash"]:
        return "hash mismatch (row edited)"
    return None


def verify_rows(
    rows: Iterable[sqlite3.Row], start: tuple[int, str] = (0, GENESIS_HASH)
) -> ChainVerification:
    """Check rows given in seq order, continuing the chain that ends at `start`
    (seq, hash) — from seq 1 by default — and stopping at the first break."""
    (prev_seq, prev_hash), checked = start, 0
    for row in rows:
        checked += 1
        reason = check_row(row, prev_seq, prev_hash)
        if reason is not None:
            return ChainVerification(False, checked, row["seq"], reason)
        prev_seq, prev_hash = row["seq"], row["hash"]
    return ChainVerification(True, checked)
