"""The journal screen over a real journal: newest first, filters, pages read as the cursor
goes down, a full event in a dialog, and the hash chain's state (intact, or the first bad
seq of a tampered journal)."""

from __future__ import annotations

import getpass
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static, TextArea
from tui_helpers import LARGE, SMALL, wait_for

from vault.errors import UsageError
from vault.journal import Journal, JournalVerified
from vault_tui.data.journal import PAGE_SIZE, events_query, parse_event_filter
from vault_tui.data.summaries import event_level, event_summary
from vault_tui.screens.journal import EventModal, JournalScreen


def seqs(app: Any) -> list[int]:
    found = app.screen.query("#events")
    if not found:
        return []
    table = found.first(DataTable)
    return [int(str(table.get_row_at(i)[0])) for i in range(table.row_count)]


def types(app: Any) -> list[str]:
    table = app.screen.query_one("#events", DataTable)
    return [str(table.get_row_at(i)[2]) for i in range(table.row_count)]


def journal(vault: Any, *args: str) -> list[dict[str, Any]]:
    result = vault.query("journal", *args)
    assert result.code == 0, result.stderr
    return list(result.summary["events"])


async def open_journal(app: Any, pilot: Any) -> JournalScreen:
    await pilot.press("5")
    await wait_for(lambda: isinstance(app.screen, JournalScreen) and bool(seqs(app)), pilot)
    assert isinstance(app.screen, JournalScreen)
    return app.screen


async def apply_filter(app: Any, pilot: Any, text: str) -> None:
    await pilot.press("slash")
    field = app.screen.query_one("#journal-filter", Input)
    assert app.focused is field
    field.value = text
    before = app.screen.generation
    await pilot.press("enter")
    await pilot.pause(0.3)
    if not app.screen.query_one("#journal-status").has_class("bad"):
        assert app.screen.generation == before + 1


@pytest.fixture
def backups(vault_repo, files_source: Path) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    vault_repo.backup("--tag", "first")
    (files_source / "c.txt").write_text("gamma\n")
    vault_repo.backup("--tag", "second")
    return journal(vault_repo)


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_the_journal_lists_events_newest_first_and_filters_them(
        backups, vault_repo, make_app, size) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await open_journal(app, pilot)
        every = [e["seq"] for e in backups]
        assert seqs(app) == sorted(every, reverse=True)
        assert types(app) == [e["type"] for e in reversed(backups)]
        assert f"{len(every)} event(s) shown" in str(screen.query_one("#journal-status").render())

        completed = [e["seq"] for e in backups if e["type"] == "BackupCompleted"]
        await apply_filter(app, pilot, "type:BackupCompleted")
        await wait_for(lambda: seqs(app) == completed[::-1], pilot)
        await apply_filter(app, pilot, "type:Backup")  # a prefix
        await wait_for(lambda: seqs(app) == [e["seq"] for e in reversed(backups)
                                             if e["type"].startswith("Backup")], pilot)
        await apply_filter(app, pilot, "actor:nobody-at-all")
        await wait_for(lambda: seqs(app) == [], pilot)
        await apply_filter(app, pilot, f"actor:{getpass.getuser()} second")  # a word too
        second = [e["seq"] for e in backups if "second" in json.dumps(e["payload"])]
        await wait_for(lambda: seqs(app) == second[::-1], pilot)
        job = next(e["stream_id"] for e in backups if e["type"] == "BackupCompleted")
        await apply_filter(app, pilot, f"stream:{job}")
        await wait_for(lambda: seqs(app) == [e["seq"] for e in reversed(backups)
                                             if e["stream_id"] == job], pilot)
        tomorrow = (datetime.now() + timedelta(days=1)).date()
        await apply_filter(app, pilot, f"since:{tomorrow}")
        await wait_for(lambda: seqs(app) == [], pilot)
        await apply_filter(app, pilot, f"until:{tomorrow} type:RepositoryInitialized")
        await wait_for(lambda: seqs(app) == [1], pilot)

        # A bad filter: a one-line error under the table; what is shown stays.
        await apply_filter(app, pilot, "typ:Backup")
        status = screen.query_one("#journal-status", Static)
        assert str(status.render()).startswith("unknown filter typ:")
        assert status.has_class("bad") and seqs(app) == [1]

        # Enter shows the event under the cursor in full.
        await apply_filter(app, pilot, f"stream:{job}")
        await wait_for(lambda: len(seqs(app)) > 1, pilot)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, EventModal), pilot)
        newest = [e for e in backups if e["stream_id"] == job][-1]
        assert app.screen.event.seq == newest["seq"]
        assert json.loads(app.screen.query_one("#event-payload", TextArea).text) \
            == newest["payload"]
        await pilot.press("escape")
        await wait_for(lambda: app.screen is screen, pilot)


async def test_pages_are_read_as_the_cursor_goes_down_and_newer_events_wait(
        backups, vault_repo, make_app) -> None:  # type: ignore[no-untyped-def]
    with Journal(vault_repo.env.journal_path) as writer:
        writer.append_many([("journal", JournalVerified(ok=True, events_checked=n,
                                                        first_bad_seq=None, reason=None))
                            for n in range(2 * PAGE_SIZE + 50)])
        head = writer.head_seq()
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_journal(app, pilot)
        assert seqs(app) == list(range(head, head - PAGE_SIZE, -1))
        assert "older below" in str(screen.query_one("#journal-status").render())
        await pilot.press("ctrl+end")  # to the last row read: the next page comes
        await wait_for(lambda: len(seqs(app)) == 2 * PAGE_SIZE, pilot)
        await pilot.press("ctrl+end")
        await wait_for(lambda: len(seqs(app)) == head, pilot)
        assert seqs(app) == list(range(head, 0, -1))  # every event once, in order
        assert "older below" not in str(screen.query_one("#journal-status").render())

        # Reading further down, new events do not move the rows: they are counted.
        vault_repo.backup()
        await wait_for(lambda: screen.newer > 0, pilot)
        assert seqs(app)[0] == head
        assert f"{screen.newer} newer (g)" in str(screen.query_one("#journal-status").render())
        await pilot.press("g")
        newest = journal(vault_repo)[-1]["seq"]
        await wait_for(lambda: seqs(app)[:1] == [newest], pilot)
        assert len(seqs(app)) == PAGE_SIZE and screen.newer == 0


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_verify_shows_the_chain_intact_up_to_the_head(
        backups, vault_repo, make_app, size) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await open_journal(app, pilot)
        chain = screen.query_one("#journal-chain", Static)
        assert "not checked yet" in str(chain.render())
        await pilot.press("v")
        await wait_for(lambda: "intact" in str(chain.render()), pilot)
        head = backups[-1]
        assert str(chain.render()) == \
            f"chain intact up to seq {head['seq']}, head hash {head['hash']}"
        assert chain.has_class("ok")
        # The check is journaled, as `vault journal verify` journals it, and listed.
        await wait_for(lambda: types(app)[:1] == ["JournalVerified"], pilot)
    [verified] = journal(vault_repo, "--type", "JournalVerified")
    assert verified["payload"] == {"ok": True, "events_checked": head["seq"],
                                   "first_bad_seq": None, "reason": None}


async def test_verify_names_the_first_bad_seq_of_a_tampered_journal(
        backups, vault_repo, make_app) -> None:  # type: ignore[no-untyped-def]
    db = sqlite3.connect(vault_repo.env.journal_path)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET payload = json_set(payload, '$.tags', json('[\"evil\"]')) "
               "WHERE seq = 2")
    db.commit()
    db.close()
    cli = vault_repo.json("journal", "verify")
    assert cli.code == 1 and cli.summary["first_bad_seq"] == 2
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_journal(app, pilot)
        chain = screen.query_one("#journal-chain", Static)
        await pilot.press("v")
        await wait_for(lambda: "BROKEN" in str(chain.render()), pilot)
        assert str(chain.render()) == ("chain BROKEN at seq 2: hash mismatch (row edited); "
                                       "intact up to seq 1")
        assert chain.has_class("bad")
        # The altered row still shows, as it now reads.
        await apply_filter(app, pilot, "type:BackupRequested evil")
        await wait_for(lambda: seqs(app) == [2], pilot)


# --- the pure parts -------------------------------------------------------------------------


def test_the_event_filter_parses_and_refuses_bad_tokens() -> None:
    wanted = parse_event_filter("type:Backup type:Job actor:alice stream:j1 "
                                "since:2026-11-01T10:00 until:2026-11-02 Disk full")
    assert wanted.types == ("Backup", "Job") and wanted.actors == ("alice",)
    assert wanted.streams == ("j1",) and wanted.words == ("Disk", "full")
    assert wanted.since == datetime(2026, 11, 1, 10).astimezone()
    assert wanted.until == datetime(2026, 11, 2, 23, 59, 59, 999999).astimezone()
    with pytest.raises(UsageError, match="unknown filter kind:"):
        parse_event_filter("kind:backup")
    with pytest.raises(UsageError, match="until:soon: expected a date"):
        parse_event_filter("until:soon")


def test_a_page_never_sorts_the_journal() -> None:
    """Every filter but the stream walks the primary key backwards and stops at the
    LIMIT; none makes SQLite sort the matches (a type may have most of 100k events)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(Path(__file__).parents[2].joinpath(
        "migrations", "0001_events.sql").read_text())
    for text in ("", "type:BackupProgressed", "actor:root", "since:2026-11-01 until:2026-12-01",
                 "type:Job actor:root disk"):
        sql, params = events_query(parse_event_filter(text), 5000, None, PAGE_SIZE)
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "TEMP B-TREE" not in plan and "INDEX" not in plan, (text, plan)


def test_summaries_are_one_line_and_leave_out_commands_and_hook_output() -> None:
    queued = {"job_id": "j", "kind": "backup", "attempt": 2, "summary": "backup docs",
              "delay_seconds": 0, "command": {"overrides": {"repository.url": "s3://k:v@h/b"}}}
    assert event_summary("JobQueued", queued) == "attempt 2: backup docs"
    hook = {"job_id": "j", "phase": "pre", "command": "mysqldump -pHUNTER2",
            "exit_code": 0, "timed_out": False, "duration_seconds": 1.0,
            "output": "line one\nline two"}
    assert event_summary("RestoreHookRan", hook) == "pre hook exited 0"
    unknown = {"name": "n", "count": 3, "command": "rm -rf /", "nested": {"a": 1}}
    assert event_summary("SomethingFromTheFuture", unknown) == "count=3, name=n"
    failed = {"job_id": "j", "error_kind": "DiskFull", "message": "no space\nleft"}
    assert event_summary("BackupFailed", failed) == "DiskFull: no space left"
    assert event_summary("BackupCompleted", {"status": "partial"}).startswith("snapshot ? ")
    assert event_summary("CommandFailed", "not a dict") == "not a dict"


def test_levels_mark_failures_and_partial_outcomes() -> None:
    assert event_level("BackupFailed", {}) == "error"
    assert event_level("JobInterrupted", {}) == "error"
    assert event_level("JournalVerified", {"ok": False}) == "error"
    assert event_level("BackupGroupCompleted", {"status": "failed"}) == "error"
    assert event_level("BackupCompleted", {"status": "partial", "errors": [{}]}) == "warn"
    assert event_level("RestoreCompleted", {"errors": [{"path": "/x"}]}) == "warn"
    assert event_level("BackupCompleted", {"status": "completed", "errors": []}) == ""
    assert event_level("JournalVerified", {"ok": True}) == ""
