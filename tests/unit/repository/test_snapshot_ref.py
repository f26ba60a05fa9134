"""Resolving `latest` and ids under --source/--path/--host (vault.repository.snapshot_ref):
the rules on hand-made snapshot lists; tree look-ups are answered from a table of what
each snapshot holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vault.errors import SnapshotNotFound
from vault.repository.snapshot import Snapshot
from vault.repository.snapshot_ref import (
    LatestAmbiguous,
    SnapshotCriteria,
    holds_in_paths,
    resolve_snapshot,
)

T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)


def snap(number: int, paths: list[str], *, source: dict[str, Any] | None = None,
         host: str = "web1", tags: list[str] | None = None) -> Snapshot:
    return Snapshot(id=f"{number:02d}" + "ab" * 31, time=T0 + timedelta(hours=number),
                    host=host, user="u", uid=0, paths=paths, tree="00" * 32,
                    vault_version="0", tags=tags or [],
                    source=source or {"type": "files"})


FILES = snap(1, ["/srv/app"], source={"type": "files", "name": "app-files",
                                      "label": "app-files"})
DB = snap(2, ["app-db"], source={"type": "sqlite", "name": "app-db", "label": "app-db"})
SETTINGS = snap(3, ["app-settings"], source={"type": "settings", "label": "app-settings"})
SAFETY = snap(4, ["/srv/app"], tags=["pre-restore"])
OTHER_HOST = snap(5, ["/srv/app"], host="web2", source=FILES.source)
TREES = {FILES.id: {"/srv", "/srv/app", "/srv/app/conf"}, SAFETY.id: {"/srv/app"},
         OTHER_HOST.id: {"/srv/app"}, DB.id: {"/app.db"}, SETTINGS.id: set()}


def holds(snapshot: Snapshot, path: str) -> bool:
    return path in TREES[snapshot.id]


def resolve(snapshots: list[Snapshot], ref: str = "latest", **criteria: str) -> Snapshot:
    return resolve_snapshot(snapshots, ref, SnapshotCriteria(**criteria), holds, "repo")


def test_one_source_latest_is_its_newest_never_a_safety_copy() -> None:
    assert resolve([FILES, SAFETY]) is FILES


def test_several_sources_are_refused_with_the_newest_of_each() -> None:
    with pytest.raises(LatestAmbiguous) as caught:
        resolve([FILES, DB, SETTINGS])
    assert caught.value.exit_code == 2
    assert "3 sources (app-settings@web1, app-db@web1, app-files@web1)" in str(caught.value)
    assert [line.split()[1] for line in caught.value.problems] == [
        s.short_id for s in (SETTINGS, DB, FILES)]


def test_the_same_source_on_two_hosts_is_two_candidates() -> None:
    with pytest.raises(LatestAmbiguous):
        resolve([FILES, OTHER_HOST])
    assert resolve([FILES, OTHER_HOST], host="web1") is FILES


def test_a_path_picks_the_newest_snapshot_holding_it() -> None:
    everything = [FILES, DB, SETTINGS, SAFETY]
    assert resolve(everything, path="/srv/app/conf") is FILES
    assert resolve(everything, path="/app.db") is DB
    with pytest.raises(SnapshotNotFound, match="latest --path /nowhere"):
        resolve(everything, path="/nowhere")
    # "/" is no path: every snapshot holds it
    with pytest.raises(LatestAmbiguous):
        resolve(everything, path="/")


def test_source_names_labels_and_paths() -> None:
    everything = [FILES, DB, SETTINGS, OTHER_HOST]
    assert resolve(everything, source="app-db") is DB
    assert resolve(everything, source="/srv/app", host="web1") is FILES
    with pytest.raises(SnapshotNotFound):
        resolve(everything, source="nothing")


def test_ids_are_narrowed_too() -> None:
    assert resolve([FILES, DB], DB.id[:8]) is DB
    with pytest.raises(SnapshotNotFound, match="--source app-files"):
        resolve([FILES, DB], DB.id[:8], source="app-files")
    with pytest.raises(SnapshotNotFound):
        resolve([FILES, DB], "01a")  # too short to be a prefix


def test_recorded_paths_answer_without_a_tree_when_they_can() -> None:
    assert holds_in_paths(FILES, "/srv/app") is True
    assert holds_in_paths(FILES, "/etc") is False
    assert holds_in_paths(FILES, "/srv/app/conf") is None  # below: the tree tells
    assert holds_in_paths(FILES, "/srv") is None  # above: the tree tells
    assert holds_in_paths(DB, "/anything") is None  # a database: only its tree knows
