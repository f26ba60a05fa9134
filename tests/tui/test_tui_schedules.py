"""The Schedules screen over a real journal: vault.toml's and `vault schedule add`'s
schedules with their next runs (as `vault schedule list` computes them), pause / resume /
run now journaled as the CLI journals them, and the retention editor."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static
from tui_helpers import LARGE, SMALL, wait_for

from vault_tui.screens.modals import ErrorModal
from vault_tui.screens.schedules import RetentionModal, SchedulesScreen

NIGHTLY = """
[[schedules]]
name = "nightly"
cron = "0 2 * * *"
timezone = "Europe/Berlin"
sources = ["docs"]
retention = { keep_daily = 7 }
"""


@pytest.fixture
def schedules(vault_repo: Any, files_source: Path) -> Any:
    """vault.toml's `nightly` and the journal's `often` (keep the last 3)."""
    config = Path(vault_repo.env.env["VAULT_CONFIG"])
    config.write_text(config.read_text() + NIGHTLY)
    vault_repo.ok("schedule", "add", "often", "--cron", "*/10 * * * *", "--source", "docs",
                  "--keep-last", "3", "--prune")
    return vault_repo


def rows(app: Any) -> dict[str, list[str]]:
    table = app.screen.query_one("#schedule-table", DataTable)
    return {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)]
            for i in range(table.row_count)}


def detail(app: Any) -> str:
    return str(app.screen.query_one("#schedule-detail", Static).render())


def local(text: str | None) -> str:
    return "-" if text is None else f"{datetime.fromisoformat(text).astimezone():%Y-%m-%d %H:%M}"


async def open_schedules(app: Any, pilot: Any) -> None:
    await pilot.press("4")
    await wait_for(lambda: isinstance(app.screen, SchedulesScreen) and len(rows(app)) == 2,
                   pilot)


async def select(app: Any, pilot: Any, name: str) -> None:
    table = app.screen.query_one("#schedule-table", DataTable)
    table.focus()
    while str(table.get_row_at(table.cursor_row)[0]) != name:
        await pilot.press("down")
    await wait_for(lambda: detail(app).startswith(f"{name}:"), pilot)


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_every_schedule_is_listed_with_its_next_run_and_retention(
        schedules: Any, make_app: Any, size: tuple[int, int]) -> None:
    listed = {s["name"]: s for s in schedules.query("schedule", "list").summary["schedules"]}
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await open_schedules(app, pilot)
        shown = rows(app)
        assert shown["nightly"] == ["nightly", "active", local(listed["nightly"]["next_run"]),
                                    "-", "-", "0 2 * * *", "Europe/Berlin"]
        assert shown["often"][:5] == ["often", "active", local(listed["often"]["next_run"]),
                                      "-", "-"]
        await select(app, pilot, "nightly")
        text = detail(app)
        assert "defined in vault.toml: change it there" in text
        assert "retention (its own): keep 7 daily snapshots" in text
        assert "prune" not in text
        assert "sources: docs" in text and "never ran" in text
        await select(app, pilot, "often")
        assert "added with `vault schedule add`" in detail(app)
        assert "retention (its own): keep 3 latest snapshots; then a prune is queued" in \
            detail(app)


async def test_pause_resume_and_run_now_journal_what_the_cli_would(
        schedules: Any, make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_schedules(app, pilot)
        await select(app, pilot, "nightly")
        await pilot.press("p")
        await wait_for(lambda: rows(app)["nightly"][1:3] == ["paused", "paused"], pilot)
        assert [e["payload"]["name"] for e in schedules.events("SchedulePaused")] == ["nightly"]
        listed = schedules.query("schedule", "list").summary["schedules"]
        assert [s["paused"] for s in listed if s["name"] == "nightly"] == [True]

        await pilot.press("u")
        await wait_for(lambda: rows(app)["nightly"][1] == "active", pilot)
        assert len(schedules.events("ScheduleResumed")) == 1

        await pilot.press("r")
        await wait_for(lambda: rows(app)["nightly"][4] == "queued", pilot)
        [run] = [e["payload"] for e in schedules.events("ScheduleRunQueued")]
        assert (run["name"], run["manual"], run["sources"]) == ("nightly", True, ["docs"])
        queued = [e["stream_id"] for e in schedules.events("JobQueued")]
        assert queued == run["job_ids"] and len(queued) == 1
        assert rows(app)["nightly"][3] != "-"  # the last run is now
        assert "last run 0s ago: queued" in detail(app)


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_the_retention_of_a_journaled_schedule_is_edited_in_a_form(
        schedules: Any, make_app: Any, size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await open_schedules(app, pilot)
        await select(app, pilot, "often")
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, RetentionModal), pilot)
        form = app.screen
        assert form.query_one("#keep_last", Input).value == "3"
        assert form.query_one("#keep_daily", Input).value == ""

        # A bad duration is said in the form, which stays open; nothing is journaled.
        form.query_one("#keep_within", Input).focus()
        await pilot.press(*"soon", "enter")
        error = form.query_one("#form-error", Static)
        await wait_for(lambda: "within: not a duration: 'soon'" in str(error.render()), pilot)
        assert app.screen is form and schedules.events("ScheduleRetentionChanged") == []

        form.query_one("#keep_within", Input).value = ""
        form.query_one("#keep_last", Input).value = ""
        form.query_one("#keep_daily", Input).focus()
        await pilot.press("1", "4")
        form.query_one("#keep_tags", Input).focus()
        await pilot.press(*"keep, legal")
        await pilot.press("ctrl+s")
        await wait_for(lambda: bool(schedules.events("ScheduleRetentionChanged")), pilot)
        [changed] = [e["payload"] for e in schedules.events("ScheduleRetentionChanged")]
        assert changed["name"] == "often"
        assert {k: v for k, v in changed["retention"].items() if v} == \
            {"keep_daily": 14, "keep_tags": ["keep", "legal"]}
        await wait_for(lambda: "keep 14 daily snapshots" in detail(app), pilot)
        assert isinstance(app.screen, SchedulesScreen)

        # Emptying every field hands the schedule back to the top-level [retention].
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, RetentionModal), pilot)
        for key in ("keep_daily", "keep_tags"):
            app.screen.query_one(f"#{key}", Input).value = ""
        await pilot.click("#save")
        await wait_for(lambda: len(schedules.events("ScheduleRetentionChanged")) == 2, pilot)
        assert schedules.events("ScheduleRetentionChanged")[1]["payload"]["retention"] is None
        await wait_for(lambda: "retention (from [retention])" in detail(app), pilot)


async def test_a_vault_toml_schedule_is_not_edited_here_and_cancel_changes_nothing(
        schedules: Any, make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_schedules(app, pilot)
        await select(app, pilot, "nightly")
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, ErrorModal), pilot)
        assert app.screen.message == ("schedule nightly is defined in vault.toml: change its "
                                      "[[schedules]] entry there")
        await pilot.press("escape")
        await select(app, pilot, "often")
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, RetentionModal), pilot)
        app.screen.query_one("#keep_last", Input).value = "9"
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, SchedulesScreen), pilot)
    assert schedules.events("ScheduleRetentionChanged") == []
