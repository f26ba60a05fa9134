"""Point in time: the newest completed snapshot at or before a moment, per source or for a
whole group (the newest group in which every member completed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vault.repository.snapshot import Snapshot
from vault.restore.point_in_time import group_at, snapshot_at

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def snap(ident: str, label: str, hours: float, *, status: str = "completed",
         group: str | None = None, tags: tuple[str, ...] = ()) -> Snapshot:
    made = Snapshot(time=T0 + timedelta(hours=hours), host="h", user="u", uid=0,
                    paths=[label], tree="00", status=status,  # type: ignore[arg-type]
                    source={"type": "sqlite", "label": label}, vault_version="t",
                    group_id=group, group_time=T0 + timedelta(hours=hours) if group else None,
                    tags=list(tags))
    made.id = ident
    return made


def test_the_newest_completed_snapshot_at_or_before_the_moment() -> None:
    snaps = [snap("a", "db", 0), snap("b", "db", 2), snap("c", "db", 3, status="partial"),
             snap("d", "other", 3), snap("e", "db", 5), snap("f", "db", 3.5,
                                                              tags=("pre-restore",))]
    assert snapshot_at(snaps, "db", T0 + timedelta(hours=4)).id == "b"  # type: ignore[union-attr]
    assert snapshot_at(snaps, "db", T0 + timedelta(hours=2)).id == "b"  # type: ignore[union-attr]
    assert snapshot_at(snaps, "db", T0 - timedelta(minutes=1)) is None
    assert snapshot_at(snaps, "nothing", T0 + timedelta(days=1)) is None
    with pytest.raises(ValueError, match="time zone"):
        snapshot_at(snaps, "db", datetime(2026, 11, 20, 13, 0))


def test_a_group_comes_back_from_the_newest_group_where_all_completed() -> None:
    snaps = [snap("a1", "files", 0, group="g1"), snap("b1", "db", 0, group="g1"),
             snap("a2", "files", 1, group="g2"), snap("b2", "db", 1, group="g2"),
             # g3: the database failed, so only the files made it
             snap("a3", "files", 2, group="g3"),
             snap("a4", "files", 9, group="g4"), snap("b4", "db", 9, group="g4")]
    picked = group_at(snaps, ["files", "db"], T0 + timedelta(hours=3))
    assert picked is not None and {k: v.id for k, v in picked.items()} == {"files": "a2",
                                                                           "db": "b2"}
    assert snapshot_at(snaps, "files", T0 + timedelta(hours=3)).id == "a3"  # type: ignore[union-attr]
    assert group_at(snaps, ["files", "db"], T0 - timedelta(hours=1)) is None
    assert group_at(snaps, ["files", "missing"], T0 + timedelta(days=1)) is None
