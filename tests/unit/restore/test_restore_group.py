"""A group back to a point in time: each member's request puts it back in its own place
(files under their own paths, a database into its own database), in the mode given."""

from __future__ import annotations

from datetime import UTC, datetime

from vault.operations.restore_group import member_request
from vault.planning.restore_request import FILES, RestoreMode, check_request
from vault.repository.snapshot import Snapshot

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def snap(kind: str, paths: list[str]) -> Snapshot:
    made = Snapshot(time=T0, host="h", user="u", uid=0, paths=paths, tree="00",
                    status="completed", source={"type": kind, "label": "x"},
                    vault_version="t", group_id="g1", group_time=T0)
    made.id = "ab" * 32
    return made


def test_files_go_back_under_their_own_paths() -> None:
    request = member_request(snap(FILES, ["/srv/app", "/etc/app"]), RestoreMode.OVERWRITE,
                             None, dry_run=True)
    assert (request.snapshot_ref, request.target, request.paths) == (
        "ab" * 32, "/", ["/srv/app", "/etc/app"])
    assert (request.files_mode, request.files_on_conflict, request.dry_run) == (
        "overwrite", "overwrite", True)
    check_request(request, FILES)


def test_a_database_goes_back_into_its_own_database() -> None:
    request = member_request(snap("postgresql", ["app"]), RestoreMode.MERGE, "rename",
                             dry_run=False)
    assert (request.target, request.paths, request.source_mode, request.on_conflict) == (
        None, [], RestoreMode.MERGE, "rename")
    check_request(request, "postgresql")
