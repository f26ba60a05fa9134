"""The history screen over real snapshots made by the real `vault` command: sorting (keys
and header clicks), filtering, marks, bulk forget with the typed confirmation, verify
queued for the worker, export, Enter to the job, `r` to the restore browser."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, DataTable, Input, Static
from tui_helpers import LARGE, SMALL, wait_for

from vault.errors import UsageError
from vault_tui.data.history import HistoryFilter, SnapshotRow, parse_history_filter, sort_rows
from vault_tui.history_actions import export_file_name
from vault_tui.screens.history import ExportModal, HistoryScreen
from vault_tui.screens.job import JobScreen
from vault_tui.screens.modals import ConfirmModal, PassphraseModal, TypedConfirmModal

# --- real snapshots -------------------------------------------------------------------------


@pytest.fixture
def snapshots(vault_repo, files_source: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Four snapshots: docs (tag daily), the SQLite source appdb, docs again with a bigger
    file (tags daily, weekly) and an ad-hoc directory (tag adhoc), in that order."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)", [(f"n{i}",) for i in range(50)])
    conn.close()
    config = Path(vault_repo.env.env["VAULT_CONFIG"])
    config.write_text(config.read_text()
                      + f'\n[[sources]]\ntype = "sqlite"\nname = "appdb"\npath = "{db}"\n')
    made = {"docs1": vault_repo.backup("--source", "docs", "--tag", "daily"),
            "appdb": vault_repo.backup("--source", "appdb")}
    (files_source / "big.bin").write_bytes(os.urandom(20_000))
    made["docs2"] = vault_repo.backup("--source", "docs", "--tag", "daily", "--tag", "weekly")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("x" * 300)
    made["notes"] = vault_repo.backup(notes, "--tag", "adhoc")
    listed = {s["id"]: s for s in vault_repo.query("snapshots").summary["snapshots"]}
    return {name: {**summary, "listed": listed[summary["snapshot_id"]]}
            for name, summary in made.items()}


def ids(app: Any) -> list[str]:
    table = app.screen.query_one("#snapshots", DataTable)
    return [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]


def rows(app: Any) -> list[list[str]]:
    table = app.screen.query_one("#snapshots", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def short(snaps: dict[str, dict[str, Any]], *names: str) -> list[str]:
    return [snaps[name]["snapshot_id"][:8] for name in names]


async def open_history(app: Any, pilot: Any, count: int) -> HistoryScreen:
    await pilot.press("2")
    await wait_for(lambda: isinstance(app.screen, HistoryScreen) and len(ids(app)) == count,
                   pilot)
    assert isinstance(app.screen, HistoryScreen)
    return app.screen


async def apply_filter(app: Any, pilot: Any, text: str) -> None:
    await pilot.press("slash")
    field = app.screen.query_one("#history-filter", Input)
    assert app.focused is field
    field.value = text
    await pilot.press("enter")
    await pilot.pause(0.1)


# --- sorting and filtering ------------------------------------------------------------------


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_the_history_lists_sorts_and_filters_the_snapshots(
        snapshots, make_app, size) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await open_history(app, pilot, 4)
        # Newest first; each row as the repository lists the snapshot.
        assert ids(app) == short(snapshots, "notes", "docs2", "appdb", "docs1")
        by_id = {row[-1]: row for row in rows(app)}
        docs2 = by_id[short(snapshots, "docs2")[0]]
        listed = snapshots["docs2"]["listed"]
        local = datetime.fromisoformat(listed["time"]).astimezone()
        assert docs2[1:] == [local.strftime("%Y-%m-%d %H:%M"), "docs", "files", "completed",
                             _human(listed["summary"]["bytes_raw"]),
                             _human(listed["summary"]["bytes_new"]), "daily,weekly",
                             listed["id"][:8]]
        assert by_id[short(snapshots, "appdb")[0]][2:5] == ["appdb", "sqlite", "completed"]
        notes_path = snapshots["notes"]["listed"]["paths"][0]
        assert by_id[short(snapshots, "notes")[0]][2] == _clip(notes_path, 24)

        # Keys: n by name (A-Z, again Z-A), z by size (largest first), d by date.
        await pilot.press("n")
        names = [row[2] for row in rows(app)]
        assert names == sorted(names, key=str.lower)
        # the ad-hoc snapshot's name is its path: "/..." sorts first
        assert ids(app) == short(snapshots, "notes", "appdb", "docs1", "docs2")
        await pilot.press("n")
        assert ids(app) == short(snapshots, "docs2", "docs1", "appdb", "notes")
        await pilot.press("z")
        sizes = {s["listed"]["id"][:8]: s["listed"]["summary"]["bytes_raw"]
                 for s in snapshots.values()}
        assert [sizes[i] for i in ids(app)] == sorted(sizes.values(), reverse=True)
        assert ids(app)[0] == short(snapshots, "docs2")[0]
        await pilot.press("d")
        assert ids(app) == short(snapshots, "notes", "docs2", "appdb", "docs1")
        await pilot.press("d")
        assert ids(app) == short(snapshots, "docs1", "appdb", "docs2", "notes")
        assert "oldest first" in str(screen.query_one("#history-status", Static).render())

        # A click on the size header sorts by size, a second click reverses it.
        await _click_header(app, pilot, "size")
        assert ids(app)[0] == short(snapshots, "docs2")[0]
        await _click_header(app, pilot, "size")
        assert [sizes[i] for i in ids(app)] == sorted(sizes.values())

        # Filters, each asserted on the rows shown (newest first again).
        await pilot.press("d")  # another order: its natural direction, newest first
        await apply_filter(app, pilot, "type:sqlite")
        assert ids(app) == short(snapshots, "appdb")
        assert app.focused is screen.table
        await apply_filter(app, pilot, "tag:daily")
        assert ids(app) == short(snapshots, "docs2", "docs1")
        await apply_filter(app, pilot, "tag:daily tag:weekly")
        assert ids(app) == short(snapshots, "docs2")
        await apply_filter(app, pilot, "source:docs source:appdb status:completed")
        assert ids(app) == short(snapshots, "docs2", "appdb", "docs1")
        await apply_filter(app, pilot, "source:notes")  # an ad-hoc path's last component
        assert ids(app) == short(snapshots, "notes")
        today = datetime.now().date()
        await apply_filter(app, pilot, f"since:{today} until:{today} type:files")
        assert ids(app) == short(snapshots, "notes", "docs2", "docs1")
        await apply_filter(app, pilot, f"until:{today - timedelta(days=1)}")
        assert ids(app) == []
        assert "0 of 4 snapshot(s)" in str(screen.query_one("#history-status").render())

        # A bad filter is a one-line error; the filter in force stays.
        await apply_filter(app, pilot, "adhoc")
        assert ids(app) == short(snapshots, "notes")
        await apply_filter(app, pilot, "colour:red")
        status = screen.query_one("#history-status", Static)
        assert str(status.render()).startswith("unknown filter colour:")
        assert status.has_class("bad")
        assert ids(app) == short(snapshots, "notes")
        await apply_filter(app, pilot, "")
        assert len(ids(app)) == 4


async def _click_header(app: Any, pilot: Any, key: str) -> None:
    table = app.screen.query_one("#snapshots", DataTable)
    x = 0
    for column in table.ordered_columns:
        if column.key.value == key:
            break
        x += column.get_render_width(table)
    assert x < table.size.width, "the header must be on screen"
    before = ids(app)
    await pilot.click("#snapshots", offset=(x + 1, 0))
    await wait_for(lambda: ids(app) != before, pilot)


def _human(n: int) -> str:
    from vault.foundation.units import human_bytes

    return human_bytes(n)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


# --- marks and bulk actions -----------------------------------------------------------------


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_marked_snapshots_are_forgotten_after_the_typed_confirmation(
        snapshots, make_app, vault_repo, size) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await open_history(app, pilot, 4)
        # Mark docs2 and appdb (rows 2 and 3): space marks and moves down.
        await pilot.press("down", "space", "space")
        assert screen.marked == {snapshots["docs2"]["snapshot_id"],
                                 snapshots["appdb"]["snapshot_id"]}
        assert [row[0] for row in rows(app)] == [" ", "●", "●", " "]
        assert "2 marked" in str(screen.query_one("#history-status").render())

        await pilot.press("f")
        await wait_for(lambda: isinstance(app.screen, TypedConfirmModal), pilot)
        modal = app.screen
        assert modal.expected == "forget 2"
        assert all(i in modal.what for i in short(snapshots, "docs2", "appdb"))
        await pilot.press(*"forget", "space", "3")
        assert modal.query_one("#ok", Button).disabled  # the wrong text does nothing
        await pilot.press("enter")
        assert app.screen is modal
        modal.query_one("#typed", Input).value = "forget 2"
        await pilot.pause(0.05)
        assert not modal.query_one("#ok", Button).disabled
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, HistoryScreen) and len(ids(app)) == 2,
                       pilot)
        assert ids(app) == short(snapshots, "notes", "docs1")
        assert screen.marked == set()
        # Forgotten ones are hidden, and shown again when asked for.
        await apply_filter(app, pilot, "status:forgotten")
        assert ids(app) == short(snapshots, "docs2", "appdb")
        assert {row[4] for row in rows(app)} == {"forgotten"}

    left = {s["id"] for s in vault_repo.query("snapshots").summary["snapshots"]}
    assert left == {snapshots["notes"]["snapshot_id"], snapshots["docs1"]["snapshot_id"]}
    forgotten = vault_repo.events("SnapshotForgotten")
    assert sorted(e["payload"]["snapshot_id"] for e in forgotten) == sorted(
        [snapshots["docs2"]["snapshot_id"], snapshots["appdb"]["snapshot_id"]])
    assert {e["payload"]["reason"] for e in forgotten} == {"forgotten on request"}


async def test_cancelling_the_forget_keeps_every_snapshot(
        snapshots, make_app, vault_repo) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_history(app, pilot, 4)
        await pilot.press("f")  # nothing marked: the snapshot under the cursor
        await wait_for(lambda: isinstance(app.screen, TypedConfirmModal), pilot)
        assert app.screen.expected == "forget 1"
        assert short(snapshots, "notes")[0] in app.screen.what
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, HistoryScreen), pilot)
        await pilot.pause(0.3)
        assert len(ids(app)) == 4
    assert len(vault_repo.query("snapshots").summary["snapshots"]) == 4
    assert vault_repo.events("SnapshotForgotten") == []


async def test_forget_asks_for_the_passphrase_and_again_when_it_was_wrong(
        snapshots, make_app, vault_repo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("VAULT_PASSWORD")  # the TUI's process has none; the CLI's still does
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_history(app, pilot, 4)
        await pilot.press("f")
        await wait_for(lambda: isinstance(app.screen, TypedConfirmModal), pilot)
        app.screen.query_one("#typed", Input).value = "forget 1"
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, PassphraseModal), pilot)
        assert not app.screen.wrong
        app.screen.query_one("#passphrase", Input).value = "not it"
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, PassphraseModal) and app.screen.wrong,
                       pilot)
        app.screen.query_one("#passphrase", Input).value = vault_repo.env.password
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, HistoryScreen) and len(ids(app)) == 3,
                       pilot)
    left = {s["id"] for s in vault_repo.query("snapshots").summary["snapshots"]}
    assert snapshots["notes"]["snapshot_id"] not in left and len(left) == 3


async def test_verify_export_enter_and_restore_from_the_history(
        snapshots, make_app, vault_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    out = tmp_path / "exports"
    out.mkdir()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_history(app, pilot, 4)

        # Verify: confirmed, then queued for the worker (the whole repository).
        await pilot.press("v")
        await wait_for(lambda: isinstance(app.screen, ConfirmModal), pilot)
        assert "whole repository" in app.screen.question
        await pilot.press("y")
        await wait_for(lambda: bool(vault_repo.events("JobQueued")), pilot)
        [queued] = vault_repo.events("JobQueued")
        assert queued["payload"]["kind"] == "verify"

        # Prune: confirmed, then queued for the worker (`vault prune --queue`).
        await pilot.press("p")
        await wait_for(lambda: isinstance(app.screen, ConfirmModal), pilot)
        assert "vault prune --queue" in app.screen.question
        await pilot.press("y")
        await wait_for(lambda: len(vault_repo.events("JobQueued")) == 2, pilot)
        prune = vault_repo.events("JobQueued")[1]["payload"]
        assert (prune["kind"], prune["command"]["args"]) == (
            "prune", {"kind": "prune", "max_unused": 0.05})

        # Export the two marked docs snapshots into a directory: one file each.
        await pilot.press("down", "space", "down", "down", "space")
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, ExportModal), pilot)
        app.screen.query_one("#export-dir", Input).value = str(out)
        await pilot.click("#ok")
        await wait_for(lambda: len(list(out.iterdir())) == 2, pilot)
        await wait_for(lambda: len(vault_repo.events("SnapshotExported")) == 2, pilot)

        # Enter opens the job that made the snapshot under the cursor; escape comes back.
        await pilot.press("ctrl+home", "enter")
        await wait_for(lambda: isinstance(app.screen, JobScreen), pilot)
        assert app.screen.job_id == snapshots["notes"]["job_id"]
        await pilot.press("escape")
        await wait_for(lambda: app.screen is screen, pilot)

        # r: to the restore browser, which opens the snapshot under the cursor (not the
        # newest one it would open by itself).
        await pilot.press("down")
        chosen = screen.current_row()
        assert chosen is not None and chosen.snapshot_id != screen.shown[0].snapshot_id
        await pilot.press("r")
        await wait_for(lambda: app.current_mode == "restore", pilot)
        await wait_for(lambda: getattr(app.screen.choice, "snapshot_id", None)
                       == chosen.snapshot_id, pilot)

    for name in ("docs1", "docs2"):
        row = SnapshotRow(snapshots[name]["snapshot_id"], datetime.now(), "docs", (),
                          "files", "completed", 0, 0, (), "", "", "full")
        export = out / export_file_name(row)
        assert export.name == f"docs-{snapshots[name]['snapshot_id'][:8]}.vault"
        preview = vault_repo.json("import", export, "--dry-run")
        assert preview.code == 0, preview.last
        assert preview.summary["preview"]["snapshot_id"] == snapshots[name]["snapshot_id"]
    exported = {e["payload"]["snapshot_id"] for e in vault_repo.events("SnapshotExported")}
    assert exported == {snapshots["docs1"]["snapshot_id"], snapshots["docs2"]["snapshot_id"]}


async def test_an_export_that_fails_is_a_one_line_error_and_journaled(
        snapshots, make_app, vault_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_history(app, pilot, 4)
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, ExportModal), pilot)
        app.screen.query_one("#export-dir", Input).value = str(tmp_path / "missing")
        await pilot.press("enter")
        await wait_for(lambda: app.screen.query("#error-message"), pilot)
        message = str(app.screen.query_one("#error-message", Static).render())
        assert message == f"export: {tmp_path / 'missing'} is not a directory"
    [failed] = vault_repo.events("CommandFailed")
    assert failed["payload"]["command"] == "tui export"
    assert failed["payload"]["error_kind"] == "UsageError"


# --- the pure parts -------------------------------------------------------------------------


def _row(name: str, when: int, size: int, **extra: Any) -> SnapshotRow:
    values: dict[str, Any] = {
        "snapshot_id": f"{when:02d}" + "ab" * 31, "time": datetime(2026, 11, when).astimezone(),
        "source": name, "paths": (f"/srv/{name}",), "source_type": "files",
        "status": "completed", "bytes_raw": size, "bytes_new": 0, "tags": (),
        "job_id": f"backup-{when}", "host": "h", "backup_type": "full", **extra}
    return SnapshotRow(**values)


def test_the_filter_text_parses_and_refuses_bad_tokens() -> None:
    parsed = parse_history_filter("source:docs type:files status:partial tag:a tag:b "
                                  "since:2026-11-01 until:2026-11-20 hello")
    assert parsed.sources == ("docs",) and parsed.types == ("files",)
    assert parsed.statuses == ("partial",) and parsed.tags == ("a", "b")
    assert parsed.since == datetime(2026, 11, 1).astimezone()
    # until: a bare date takes the whole day in
    assert parsed.until == datetime(2026, 11, 20, 23, 59, 59, 999999).astimezone()
    assert parsed.words == ("hello",)
    for bad, message in (("colour:red", "unknown filter colour:"), ("tag:", "tag: needs"),
                         ("status:gone", "status:gone: expected one of"),
                         ("since:yesterday", "since:yesterday: expected a date")):
        with pytest.raises(UsageError, match=message):
            parse_history_filter(bad)
    assert parse_history_filter("12:30 ok").words == ("12:30", "ok")  # not a key


def test_forgotten_snapshots_show_only_when_asked_for() -> None:
    rows = [_row("a", 1, 10), _row("b", 2, 20, status="forgotten"),
            _row("c", 3, 30, status="partial")]
    assert [r.source for r in rows if HistoryFilter().matches(r)] == ["a", "c"]
    wanted = parse_history_filter("status:forgotten")
    assert [r.source for r in rows if wanted.matches(r)] == ["b"]
    everything = parse_history_filter("status:all")
    assert [r.source for r in rows if everything.matches(r)] == ["a", "b", "c"]


def test_a_source_matches_its_name_or_a_path_component_not_a_substring() -> None:
    rows = [_row("app", 1, 1), _row("appdb", 2, 1), _row(None, 3, 1,  # type: ignore[arg-type]
                                                         paths=("/home/me/app/",))]
    wanted = parse_history_filter("source:app")
    assert [r.time.day for r in rows if wanted.matches(r)] == [1, 3]


def test_sorting_ties_go_by_time_then_id() -> None:
    rows = [_row("b", 3, 10), _row("a", 1, 10), _row("B", 2, 30)]
    assert [r.time.day for r in sort_rows(rows, "size", True)] == [2, 3, 1]
    assert [r.time.day for r in sort_rows(rows, "name", False)] == [1, 2, 3]
    assert [r.time.day for r in sort_rows(rows, "date", True)] == [3, 2, 1]
    with pytest.raises(ValueError):
        sort_rows(rows, "colour", False)


def test_export_file_names_are_safe_and_distinct() -> None:
    row = _row("../etc/passwd db", 1, 1)
    assert export_file_name(row) == f"etc_passwd_db-{row.short_id}.vault"
    assert export_file_name(_row("", 2, 1, source=None, paths=())).startswith("snapshot-")
