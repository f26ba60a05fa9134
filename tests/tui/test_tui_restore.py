"""The restore browser over a real repository made by the real `vault` command: the tree
read lazily (files; a SQLite source's entities and tables), marks, the preview against
`vault restore --dry-run --json`, and the confirmations before a restore is queued."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from restore_helpers import (
    CHAT_ENTITIES,
    PROJECT_2_SESSIONS,
    children,
    cli_plan,
    cursor_to,
    expand,
    file_state,
    find,
    is_marked,
    make_chat,
    mark,
    open_restore,
    preview,
    rows,
    screen,
    text_of,
    tree,
)
from textual.widgets import Button, Input, Select
from tui_helpers import LARGE, SMALL, wait_for

from vault_tui.data.restore_plan import plan_rows
from vault_tui.screens.modals import ConfirmModal, ErrorModal, TypedConfirmModal


@pytest.fixture
def chat_source(vault_env: Any, tmp_path: Path) -> Path:
    """A config with a SQLite source `chat` declaring project -> session -> message."""
    db = tmp_path / "chat.db"
    make_chat(db)
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "sqlite"\nname = "chat"\npath = "{db}"\n'
                      + CHAT_ENTITIES)
    vault_env.env["VAULT_CONFIG"] = str(config)
    return db


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_a_files_snapshot_is_read_a_level_at_a_time_and_previewed_as_the_cli_plans(
        vault_repo: Any, files_source: Path, make_app: Any, tmp_path: Path, monkeypatch: Any,
        size: tuple[int, int]) -> None:
    monkeypatch.chdir(tmp_path)
    snapshot = vault_repo.backup()["snapshot_id"]
    (files_source / "sub" / "b.txt").write_text("beta, edited since\n")
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await open_restore(app, pilot)
        assert screen(app).choice is not None
        assert screen(app).choice.snapshot_id == snapshot
        root = find(app, str(files_source))
        assert root is not None and children(root) == ["sub/", "a.txt  6 B"]
        sub = find(app, "sub/")
        assert sub is not None and not sub.children, "read only when expanded"
        assert await expand(app, pilot, "sub/") == ["b.txt  5 B"]

        # the whole snapshot, into the prefilled new directory: nothing there to change
        target = screen(app).query_one("#target", Input).value
        assert target == str(tmp_path / f"restore-{snapshot[:8]}")
        plan = await preview(app, pilot)
        assert plan == cli_plan(vault_repo, f"{snapshot}:{files_source}", "-t", target,
                                "--mode", "merge", "--on-conflict", "skip")
        assert plan["totals"]["create"] == 3 and not plan["destructive"]
        assert rows(app, "preview") == plan_rows(plan)

        # sub/ marked, back where it came from, in overwrite mode (m cycles the mode)
        await mark(app, pilot, "sub/")
        assert "sub" in text_of(app, "selection")
        screen(app).query_one("#target", Input).value = str(files_source)
        await cursor_to(app, pilot, "sub/")
        await pilot.press("m", "m")  # merge -> new-target -> overwrite
        assert screen(app).query_one("#mode", Select).value == "overwrite"
        await wait_for(lambda: screen(app).query_one("#on-conflict", Select).value
                       == "overwrite", pilot)
        plan = await preview(app, pilot)
        assert plan == cli_plan(vault_repo, f"{snapshot}:{files_source}", "sub",
                                "-t", files_source, "--mode", "overwrite",
                                "--on-conflict", "overwrite")
        # the directory itself is there already (".": skip), its file differs
        assert plan["groups"] == {".": {"skip": 1}, "sub": {"overwrite": 1}}
        assert plan["destructive"]
        assert rows(app, "preview") == [[".", "0", "0", "1", "0", "0", "0"],
                                        ["sub", "0", "1", "0", "0", "0", "0"],
                                        ["total", "0", "1", "1", "0", "0", "0"]]
        assert "changes what is there (overwrite 1)" in text_of(app, "preview-summary")


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_a_sqlite_snapshot_shows_its_entities_with_counts_and_their_records(
        vault_repo: Any, chat_source: Path, make_app: Any, size: tuple[int, int]) -> None:
    snapshot = vault_repo.backup("--source", "chat")["snapshot_id"]
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await open_restore(app, pilot)
        assert children(tree(app).root) == ["entities", "tables"]
        assert await expand(app, pilot, "entities") == ["project (projects): 3 rows"]
        assert await expand(app, pilot, "project (projects)") == [
            "session (sessions): 9 rows  2026-11-10 .. 2026-11-18",
            "project 1  p1", "project 2  p2", "project 3  p3"]
        assert await expand(app, pilot, "project 2") == [
            f"session {s}  2 2026-11-{10 + s:02d}" for s in PROJECT_2_SESSIONS]
        assert len(await expand(app, pilot, "session 4")) == 10  # messages 4, 13, ..., 85
        assert find(app, "message 13") is not None
        assert await expand(app, pilot, "tables") == [
            "messages: 90 rows", "projects: 3 rows", "sessions: 9 rows", "users: 1 rows"]

        # project 2 with what lies below it, merged back into the database it came from
        await mark(app, pilot, "project 2")
        assert text_of(app, "selection").startswith("project 2")
        plan = await preview(app, pilot)
        assert plan == cli_plan(vault_repo, snapshot[:8], "--query",
                                json.dumps({"entity": "project", "ids": [2]}),
                                "--mode", "merge", "--on-conflict", "skip")
        assert plan["totals"]["skip"] == 1 + 3 + 30  # nothing changed since
        assert rows(app, "preview") == plan_rows(plan)

        # a table: the records are unmarked (one restore takes tables or an entity's ids)
        await mark(app, pilot, "users: 1 rows")
        node = find(app, "project 2")
        assert node is not None and not is_marked(node)
        assert text_of(app, "selection") == "users"
        plan = await preview(app, pilot)
        assert plan == cli_plan(vault_repo, snapshot[:8], "--only", "users", "--mode",
                                "merge", "--on-conflict", "skip")


async def test_a_destructive_restore_waits_for_the_target_name_then_is_queued_with_yes(
        vault_repo: Any, files_source: Path, make_app: Any) -> None:
    snapshot = vault_repo.backup()["snapshot_id"]
    (files_source / "a.txt").write_text("alpha, edited\n")
    before = file_state(files_source)
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_restore(app, pilot)
        screen(app).query_one("#target", Input).value = str(files_source)
        screen(app).query_one("#mode", Select).value = "overwrite"
        await wait_for(lambda: screen(app).query_one("#on-conflict", Select).value
                       == "overwrite", pilot)
        await cursor_to(app, pilot, str(files_source))
        await pilot.press("g")
        await wait_for(lambda: isinstance(app.screen, TypedConfirmModal), pilot)
        modal = app.screen
        assert isinstance(modal, TypedConfirmModal) and modal.expected == "docs"
        assert "overwrite 1" in str(modal.query_one("#what").render())
        await pilot.press(*"doc")
        assert modal.query_one("#ok", Button).disabled
        await pilot.press("enter")  # the wrong name: nothing happens
        assert app.screen is modal
        assert vault_repo.events("JobQueued") == []
        await pilot.press("s")
        assert not modal.query_one("#ok", Button).disabled
        await pilot.press("enter")
        await wait_for(lambda: bool(text_of(app, "job-status").startswith("job ")), pilot)
        await wait_for(lambda: "waiting for a worker" in text_of(app, "job-status"), pilot)
        job_id = screen(app).job_id
    [queued] = vault_repo.events("JobQueued")
    [requested] = vault_repo.events("RestoreRequested")
    assert queued["stream_id"] == requested["stream_id"] == job_id
    command = queued["payload"]["command"]["args"]
    assert command["yes"] is True and command["mode"] == "overwrite"
    assert command["snapshot_ref"] == f"{snapshot}:{files_source}"
    assert command["target"] == str(files_source) and command["paths"] == []
    assert requested["payload"]["options"]["yes"] is True
    assert file_state(files_source) == before, "queued for the worker, not run here"


async def test_a_restore_that_changes_nothing_is_asked_plainly_and_queued_without_yes(
        vault_repo: Any, chat_source: Path, make_app: Any, tmp_path: Path) -> None:
    vault_repo.backup("--source", "chat")
    target = tmp_path / "copy.db"
    app = make_app()
    async with app.run_test(size=LARGE) as pilot:
        await open_restore(app, pilot)
        await expand(app, pilot, "tables")
        await mark(app, pilot, "projects: 3 rows")
        screen(app).query_one("#mode", Select).value = "new-target"
        await wait_for(lambda: screen(app).query_one("#on-conflict", Select).value
                       == "overwrite", pilot)
        screen(app).query_one("#target", Input).value = str(target)
        await pilot.press("g")
        await wait_for(lambda: isinstance(app.screen, ConfirmModal), pilot)
        await pilot.press("y")
        await wait_for(lambda: "waiting for a worker" in text_of(app, "job-status"), pilot)
    [queued] = vault_repo.events("JobQueued")
    args = queued["payload"]["command"]["args"]
    assert (args["yes"], args["database"], args["only"], args["target"], args["mode"]) == (
        False, True, ["projects"], str(target), "new-target")
    assert not target.exists()


async def test_what_cannot_be_restored_is_said_in_a_modal(
        vault_repo: Any, chat_source: Path, make_app: Any) -> None:
    vault_repo.backup("--source", "chat")
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_restore(app, pilot)
        screen(app).query_one("#mode", Select).value = "new-target"
        screen(app).query_one("#target", Input).value = ""
        await pilot.press("p")
        await wait_for(lambda: isinstance(app.screen, ErrorModal), pilot)
        assert "give a target" in app.screen.message
        await pilot.press("escape")
        # into the database it came from, new-target is refused by the source itself
        screen(app).query_one("#target", Input).value = str(chat_source)
        await pilot.press("p")
        await wait_for(lambda: isinstance(app.screen, ErrorModal), pilot)
        assert "\n" not in app.screen.message
    assert vault_repo.events("JobQueued") == []


async def test_with_no_snapshot_yet_the_keys_say_so_and_every_action_is_in_the_palette(
        vault_repo: Any, files_source: Path, make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("3")
        await wait_for(lambda: screen(app).data is not None, pilot)
        assert screen(app).choices == [] and screen(app).choice is None
        assert str(screen(app).query_one("#snapshot", Select).value) == str(Select.NULL)
        await pilot.press("p", "g", "u")
        # each says why not (run_test keeps notifications off the screen: count them)
        await wait_for(lambda: len(app._notifications) == 3, pilot)
        await pilot.press("t")
        assert isinstance(app.focused, Input)
        await pilot.press("escape")
        assert app.focused is tree(app)
        commands = [c.title for c in app.get_system_commands(screen(app))]
        for action in ("Preview", "Restore", "Undo", "Pick a snapshot", "Next restore mode",
                       "Mark or unmark the node under the cursor", "Edit the target"):
            assert action in commands
        vault_repo.backup()  # the first snapshot appears without a key press
        await wait_for(lambda: screen(app).browser is not None, pilot)
        assert find(app, str(files_source)) is not None
