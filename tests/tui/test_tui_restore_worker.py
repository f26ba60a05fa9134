"""The restore browser with a real `vault worker`: a destructive restore confirmed in the
TUI is carried out by the worker, followed live to its report, and undone through the TUI
(an undo queued for the worker) -- the files and rows are compared with the originals."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from restore_helpers import (
    CHAT_ENTITIES,
    PROJECT_2_SESSIONS,
    chat_rows,
    cli_plan,
    cursor_to,
    expand,
    file_state,
    make_chat,
    mark,
    open_restore,
    preview,
    rows,
    screen,
    text_of,
)
from textual.widgets import Checkbox, Input, Select
from tui_helpers import LARGE, SMALL, wait_for

from vault.foundation.units import human_bytes
from vault.journal import events as ev
from vault_tui.data.restore_plan import report_rows
from vault_tui.screens.modals import ConfirmModal, ErrorModal, TypedConfirmModal

JOB_SECONDS = 90.0  # a slow machine's worker start and job


@pytest.fixture
def worker(vault_repo: Any, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    proc = vault_repo.popen("worker", stderr=log)
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


async def _confirm_restore(app: Any, pilot: Any, name: str) -> None:
    """g, then the target's name typed into the confirmation."""
    await pilot.press("g")
    await wait_for(lambda: isinstance(app.screen, TypedConfirmModal), pilot)
    assert app.screen.expected == name
    await pilot.press(*name, "enter")
    await wait_for(lambda: text_of(app, "job-status").startswith("job "), pilot)


async def _undo(app: Any, pilot: Any) -> None:
    await wait_for(lambda: "u undoes it" in text_of(app, "undo-status"), pilot)
    await pilot.press("u")
    await wait_for(lambda: isinstance(app.screen, ConfirmModal), pilot)
    await pilot.press("y")
    await wait_for(lambda: text_of(app, "undo-status").startswith("undone:"), pilot,
                   timeout=JOB_SECONDS)


def _reported(vault: Any, job_id: str) -> ev.RestoreReported:
    [found] = [e for e in vault.events("RestoreReported") if e["stream_id"] == job_id]
    return ev.RestoreReported.model_validate(found["payload"])


async def test_a_files_restore_runs_in_the_worker_and_is_undone_from_the_tui(
        vault_repo: Any, files_source: Path, make_app: Any, worker: Any) -> None:
    (files_source / "sub" / "c.bin").write_bytes(bytes(range(256)) * 100)
    vault_repo.backup()
    original = file_state(files_source)
    (files_source / "a.txt").write_text("alpha, edited since\n")
    (files_source / "extra.txt").write_text("made since\n")
    (files_source / "sub" / "c.bin").unlink()
    changed = file_state(files_source)
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_restore(app, pilot)
        screen(app).query_one("#target", Input).value = str(files_source)
        await cursor_to(app, pilot, str(files_source))
        await pilot.press("m", "m")  # overwrite: the target becomes the snapshot's
        await wait_for(lambda: screen(app).query_one("#on-conflict", Select).value
                       == "overwrite", pilot)
        await _confirm_restore(app, pilot, "docs")
        job_id = screen(app).job_id
        await wait_for(lambda: "completed" in text_of(app, "job-status"), pilot,
                       timeout=JOB_SECONDS)
        assert file_state(files_source) == original  # bytes, modes and times
        await wait_for(lambda: len(rows(app, "report")) > 1, pilot)
        report = _reported(vault_repo, str(job_id))
        assert rows(app, "report") == report_rows(report)
        assert rows(app, "report")[-1] == ["total", "2", "2", "1", "0", "1"]
        assert report.bytes_written == 25600 + len("alpha\n")  # c.bin and a.txt
        assert f"{human_bytes(report.bytes_written)} written" in text_of(app, "report-text")

        await _undo(app, pilot)
        assert file_state(files_source) == changed
    [undone] = vault_repo.events("RestoreUndone")
    assert undone["stream_id"] == job_id
    undo_jobs = [e for e in vault_repo.events("RestoreRequested")
                 if e["payload"]["options"].get("undo_of") == job_id]
    assert len(undo_jobs) == 1
    finished = [e["type"] for e in vault_repo.events("RestoreCompleted", "RestoreFailed")
                if e["stream_id"] == undo_jobs[0]["stream_id"]]
    assert finished == ["RestoreCompleted"]


def _chat_source(vault_repo: Any, vault_env: Any, tmp_path: Path) -> Path:
    """A SQLite chat database with its entity hierarchy configured, backed up once."""
    db = tmp_path / "chat.db"
    make_chat(db)
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "sqlite"\nname = "chat"\npath = "{db}"\n'
                      + CHAT_ENTITIES)
    vault_env.env["VAULT_CONFIG"] = str(config)
    vault_repo.backup("--source", "chat")
    return db


async def test_a_project_put_back_in_its_database_by_the_worker_and_undone(
        vault_repo: Any, vault_env: Any, tmp_path: Path, make_app: Any, worker: Any) -> None:
    db = _chat_source(vault_repo, vault_env, tmp_path)
    original = chat_rows(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE projects SET title = 'renamed' WHERE id = 2")
    conn.execute("DELETE FROM messages WHERE session_id = 4")
    conn.execute("INSERT INTO sessions (project_id, started) VALUES (2, '2026-12-01')")
    conn.execute("UPDATE projects SET title = 'kept' WHERE id = 3")  # not selected
    conn.close()
    changed = chat_rows(db)
    app = make_app()
    async with app.run_test(size=LARGE) as pilot:
        await open_restore(app, pilot)
        await expand(app, pilot, "entities")
        await expand(app, pilot, "project (projects)")
        await mark(app, pilot, "project 2")
        screen(app).query_one("#mode", Select).value = "overwrite"
        await wait_for(lambda: screen(app).query_one("#on-conflict", Select).value
                       == "overwrite", pilot)
        await _confirm_restore(app, pilot, "chat")
        await wait_for(lambda: "completed" in text_of(app, "job-status"), pilot,
                       timeout=JOB_SECONDS)
        after = chat_rows(db)
        # project 2, its sessions and their messages are the snapshot's again; the session
        # it gained since is deleted; project 3's change is not within the selection
        assert after == {**original, "projects": [
            row if row[1] != 3 else changed["projects"][2] for row in original["projects"]]}
        # the report, per table, as the journal keeps it (RestoreReported)
        await wait_for(lambda: len(rows(app, "report")) > 1, pilot)
        report = _reported(vault_repo, str(screen(app).job_id))
        assert rows(app, "report") == report_rows(report)
        assert {g.group for g in report.groups} == {"projects", "sessions", "messages"}

        await _undo(app, pilot)
        assert chat_rows(db) == changed


async def test_a_project_copied_with_new_ids_and_a_new_name_by_the_worker(
        vault_repo: Any, vault_env: Any, tmp_path: Path, make_app: Any, worker: Any) -> None:
    """The restore browser's "copy with new ids" and rename (`--new-ids --rename`): project
    2 with its sessions and messages lands beside the original under new keys, every
    reference rewritten; the original rows are untouched."""
    db = _chat_source(vault_repo, vault_env, tmp_path)
    snapshot = vault_repo.query("snapshots").summary["snapshots"][-1]["id"]
    original = chat_rows(db)
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_restore(app, pilot)
        await expand(app, pilot, "entities")
        await expand(app, pilot, "project (projects)")
        await pilot.press("n")  # a copy, but nothing marked yet: refused, nothing queued
        assert screen(app).query_one("#new-ids", Checkbox).value is True
        await pilot.press("p")
        await wait_for(lambda: isinstance(app.screen, ErrorModal), pilot)
        assert "mark them in the tree" in app.screen.message
        await pilot.press("escape")
        await mark(app, pilot, "project 2")
        screen(app).query_one("#rename", Input).value = "title=p2 (copy)"
        plan = await preview(app, pilot)
        assert plan == cli_plan(vault_repo, snapshot[:8], "--entity", "project=2",
                                "--mode", "merge", "--new-ids", "--rename", "title=p2 (copy)")
        assert plan["totals"]["create"] == 1 + 3 + 30
        await pilot.press("g")  # adds rows only: asked plainly, no name to type
        await wait_for(lambda: isinstance(app.screen, ConfirmModal), pilot)
        await pilot.press("y")
        await wait_for(lambda: text_of(app, "job-status").startswith("job "), pilot)
        await wait_for(lambda: "completed" in text_of(app, "job-status"), pilot,
                       timeout=JOB_SECONDS)
        await wait_for(lambda: "new ids:" in text_of(app, "report-text"), pilot)
        report = _reported(vault_repo, str(screen(app).job_id))

    after = chat_rows(db)
    for table, table_rows in original.items():  # every original row as it was
        assert after[table][:len(table_rows)] == table_rows
    new = {table: after[table][len(table_rows):] for table, table_rows in original.items()}
    [project] = new["projects"]
    assert project[2:] == ("text", "p2 (copy)")
    ids = {table: {int(old): int(new) for old, new in pairs.items()}  # journaled as text
           for table, pairs in report.id_map.items()}
    assert ids["projects"] == {2: project[1]}
    # each new session is one of project 2's, pointing at the new project
    assert sorted(ids["sessions"]) == PROJECT_2_SESSIONS
    sessions = {row[1]: row for row in original["sessions"]}
    for session in new["sessions"]:
        old_id = next(o for o, n in ids["sessions"].items() if n == session[1])
        assert session[3] == project[1]
        assert session[4:] == sessions[old_id][4:]  # the started date, type for type
    # each new message is one of their messages, pointing at its session's copy
    assert len(new["messages"]) == 30
    for message in new["messages"]:
        old_id = next(o for o, n in ids["messages"].items() if n == message[1])
        [old] = [r for r in original["messages"] if r[1] == old_id]
        assert message[3] == ids["sessions"][old[3]]
        assert message[4:] == old[4:]  # body and sent, storage class and value
