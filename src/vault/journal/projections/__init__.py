"""Read models derived from the journal, kept current in the append's own transaction.

A projection owns one or more tables and a row in `projection_checkpoints` naming the last
event `seq` it has applied. The store writes the projection rows and the checkpoint in the
same transaction as the events (as eventsourcing's projections do), so a reader never sees
a view that disagrees with the log. Rows must follow from the events alone — the event's
`recorded_at` and payload, never the wall clock — so that `Journal.rebuild_projections()`
reproduces the tables exactly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Protocol

from vault.journal.events import RecordedEvent
from vault.journal.projections.base import TableProjection
from vault.journal.projections.jobs import JobsProjection
from vault.journal.projections.schedules import SchedulesProjection
from vault.journal.projections.snapshots import SnapshotsProjection


class Projection(Protocol):
    """What the store needs of a read model."""

    #: the checkpoint key; also how `vault journal rebuild` names it
    name: str

    def create(self, conn: sqlite3.Connection) -> None:
        """Create the projection's tables and indexes (empty)."""

    def drop(self, conn: sqlite3.Connection) -> None:
        """Drop the projection's tables if they exist."""

    def apply(self, conn: sqlite3.Connection, recorded: RecordedEvent) -> None:
        """Fold one event into the tables; ignore the types it does not care about."""


#: every projection the store maintains, in the order they are applied
PROJECTIONS: tuple[Projection, ...] = (
    JobsProjection(), SnapshotsProjection(), SchedulesProjection())


def checkpoints(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT name, seq FROM projection_checkpoints").fetchall())


def save_checkpoint(conn: sqlite3.Connection, name: str, seq: int) -> None:
    conn.execute(
        "INSERT INTO projection_checkpoints (name, seq) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
        (name, seq),
    )


def lagging(conn: sqlite3.Connection, head: int) -> list[tuple[Projection, int]]:
    """The projections whose checkpoint is behind `head`, with their positions."""
    done = checkpoints(conn)
    return [(p, done.get(p.name, 0)) for p in PROJECTIONS if done.get(p.name, 0) < head]


def replay(
    conn: sqlite3.Connection,
    projections: Sequence[Projection],
    records: Iterable[RecordedEvent],
    after_seq: int,
) -> int:
    """Fold `records` (the events after `after_seq`) into `projections`; returns the count.

    Replaying from 0 first drops and recreates the tables, so leftovers cannot double-count.
    The caller holds the write transaction.
    """
    if after_seq == 0:
        for projection in projections:
            projection.drop(conn)
            projection.create(conn)
    replayed, last = 0, after_seq
    for record in records:
        for projection in projections:
            projection.apply(conn, record)
        replayed, last = replayed + 1, record.seq
    for projection in projections:
        save_checkpoint(conn, projection.name, last)
    return replayed


__all__ = [
    "PROJECTIONS",
    "JobsProjection",
    "Projection",
    "SchedulesProjection",
    "SnapshotsProjection",
    "TableProjection",
    "checkpoints",
    "lagging",
    "replay",
    "save_checkpoint",
]
