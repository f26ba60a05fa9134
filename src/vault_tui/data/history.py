"""The history screen's data: the snapshots the journal saw made (its `snapshots`
projection), and the filter and order the operator puts on them.

Reading is one query; filtering and sorting are pure functions over the rows, so the
screen re-filters without touching the journal and the rules are tested on their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.errors import UsageError
from vault_tui.data.filters import parse_filter_text, parse_moment
from vault_tui.data.journal import read_only

#: what the projection's CHECK allows; `forgotten` ones are hidden unless asked for
STATUSES = ("completed", "partial", "corrupted", "repaired", "forgotten")
#: the orders the screen offers (each ties on the snapshot time, then the id)
SORTS = ("date", "size", "name")


@dataclass(frozen=True)
class SnapshotRow:
    snapshot_id: str
    time: datetime
    source: str | None  # the configured source's name; None for ad-hoc paths
    paths: tuple[str, ...]
    source_type: str  # files, sqlite, postgresql, mongodb, settings
    status: str
    bytes_raw: int
    bytes_new: int
    tags: tuple[str, ...]
    job_id: str
    host: str
    backup_type: str

    @property
    def short_id(self) -> str:
        return self.snapshot_id[:8]

    @property
    def name(self) -> str:
        """What the snapshot is of: its source's name, or its paths."""
        return self.source or ", ".join(self.paths)


def read_snapshots(journal_path: Path) -> list[SnapshotRow]:
    """Every row of the `snapshots` projection, forgotten ones too (the filter decides),
    oldest first. No journal yet: no snapshots."""
    sql = ("SELECT snapshot_id, snapshot_time, source, paths, source_type, status, "
           "bytes_raw, bytes_new, tags, job_id, host, backup_type FROM snapshots "
           "ORDER BY snapshot_time, snapshot_id")
    with read_only(journal_path) as conn:
        rows = [] if conn is None else conn.execute(sql).fetchall()
    return [SnapshotRow(snapshot_id=r["snapshot_id"],
                        time=datetime.fromisoformat(r["snapshot_time"]),
                        source=r["source"], paths=tuple(_strings(r["paths"])),
                        source_type=r["source_type"], status=r["status"],
                        bytes_raw=r["bytes_raw"], bytes_new=r["bytes_new"],
                        tags=tuple(_strings(r["tags"])), job_id=r["job_id"], host=r["host"],
                        backup_type=r["backup_type"]) for r in rows]


def _strings(text: str) -> list[str]:
    value: Any = json.loads(text)
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@dataclass(frozen=True)
class HistoryFilter:
    """`source:NAME type:TYPE status:STATUS tag:TAG since:DATE until:DATE words`.

    Several of source/type/status are alternatives; several tags must all be present;
    words must all appear in the name, id, tags or job id. `status:all` shows forgotten
    snapshots too, which are hidden unless a status names them."""

    sources: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    words: tuple[str, ...] = ()

    def matches(self, row: SnapshotRow) -> bool:
        return all(test(row) for test in self._tests())

    def _tests(self) -> Iterable[Callable[[SnapshotRow], bool]]:
        if self.statuses != ("all",):
            shown = self.statuses or tuple(s for s in STATUSES if s != "forgotten")
            yield lambda row: row.status in shown
        if self.sources:
            yield lambda row: any(_is_source(row, name) for name in self.sources)
        if self.types:
            yield lambda row: row.source_type in self.types
        if self.tags:
            yield lambda row: set(self.tags) <= set(row.tags)
        if self.since is not None:
            since = self.since
            yield lambda row: row.time >= since
        if self.until is not None:
            until = self.until
            yield lambda row: row.time <= until
        if self.words:
            words = [word.lower() for word in self.words]
            yield lambda row: all(word in _haystack(row) for word in words)


def _is_source(row: SnapshotRow, name: str) -> bool:
    """The configured source `name`, or a snapshot of a path that is or ends in `name`."""
    if row.source == name:
        return True
    return any(path == name or path.rstrip("/").split("/")[-1] == name for path in row.paths)


def _haystack(row: SnapshotRow) -> str:
    return " ".join([row.name, row.snapshot_id, row.job_id, *row.tags]).lower()


def parse_history_filter(text: str) -> HistoryFilter:
    """The filter bar's text as a HistoryFilter. Raises UsageError naming a bad token."""
    keys = ("source", "type", "status", "tag", "since", "until")
    tokens, words = parse_filter_text(text, keys)
    for status in tokens["status"]:
        if status not in (*STATUSES, "all"):
            raise UsageError(f"status:{status}: expected one of {', '.join(STATUSES)} or all")
    if "all" in tokens["status"]:
        tokens["status"] = ["all"]
    since = parse_moment(tokens["since"][-1], "since") if tokens["since"] else None
    until = parse_moment(tokens["until"][-1], "until", end_of_day=True) \
        if tokens["until"] else None
    return HistoryFilter(sources=tuple(tokens["source"]), types=tuple(tokens["type"]),
                         statuses=tuple(tokens["status"]), tags=tuple(tokens["tag"]),
                         since=since, until=until, words=tuple(words))


def sort_rows(rows: Iterable[SnapshotRow], by: str, descending: bool) -> list[SnapshotRow]:
    """Rows by date, size (bytes_raw) or name; ties go by time, then id."""
    keys: dict[str, Callable[[SnapshotRow], Any]] = {
        "date": lambda r: (r.time, r.snapshot_id),
        "size": lambda r: (r.bytes_raw, r.time, r.snapshot_id),
        "name": lambda r: (r.name.lower(), r.time, r.snapshot_id),
    }
    if by not in keys:
        raise ValueError(f"cannot sort by {by!r}")
    return sorted(rows, key=keys[by], reverse=descending)


def shown_rows(rows: Iterable[SnapshotRow], wanted: HistoryFilter, by: str,
               descending: bool) -> list[SnapshotRow]:
    return sort_rows((row for row in rows if wanted.matches(row)), by, descending)
