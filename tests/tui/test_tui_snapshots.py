"""Snapshot tests: screens at 80x24 over the same vault on every run and machine
(snapshot_data.py builds it: seeded randomness, a frozen clock, a fixed path), with the
app's clock fixed too. The SVGs in __snapshots__/ were reviewed before they were accepted;
after an intended change, run with --snapshot-update and review the new ones (pytest
writes a report with both side by side when one differs).

A new screen is one test: `shot(snap_compare, demo_app(), press=[...], ready=...)` with
the keys that reach it and a condition on its widgets that says it has loaded; a screen
reached through more than keys (a tree opened a level at a time) is driven there first by
`drive`, which waits on the widgets after each step."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import pytest
from restore_helpers import expand, find, is_marked, mark, open_restore
from snapshot_data import NOW, PASSWORD, ROOT, VAULT_VERSION, build, built
from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_helpers import SMALL, wait_for

import vault.repository.repository as repository_module
from vault_tui.app import VaultApp
from vault_tui.context import TuiContext
from vault_tui.screens.dashboard import DashboardScreen, JobProgress
from vault_tui.screens.restore import RestoreScreen

Ready = Callable[[VaultApp], bool]
Drive = Callable[[VaultApp, Pilot[None]], Awaitable[None]]


@pytest.fixture
def demo_app() -> Iterator[Callable[[], VaultApp]]:
    """Apps over the snapshot tests' vault, held for this test only; in UTC, so that
    local times on screen are the same everywhere; in ROOT, so that the restore target
    the browser proposes (beside the working directory) is the same everywhere; running
    as the vault version that wrote the snapshots, so that a restore's preview does not
    warn that they are older, naming the real version (which changes at each release)."""
    with built() as config, pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("VAULT_")]:
            patch.delenv(name)
        patch.setenv("VAULT_PASSWORD", PASSWORD)
        patch.setenv("HOME", str(ROOT / "home"))
        patch.setenv("TZ", "UTC")
        patch.chdir(ROOT)
        patch.setattr(repository_module, "__version__", VAULT_VERSION)
        time.tzset()
        try:
            yield lambda: VaultApp(TuiContext(config_path=config), follow=False,
                                   clock=lambda: NOW)
        finally:
            patch.undo()
            time.tzset()


def shot(snap_compare: Any, app: VaultApp, *, ready: Ready,
         press: Iterable[str] = (), drive: Drive | None = None) -> bool:
    """The app at 80x24 after `drive(app, pilot)` (if given), then `press`, once
    `ready(app)` holds, against its snapshot."""

    async def run_before(pilot: Pilot[None]) -> None:
        if drive is not None:
            await drive(app, pilot)
        await pilot.press(*press)
        await wait_for(lambda: ready(app), pilot)
        await pilot.pause(0.1)

    return bool(snap_compare(app, terminal_size=SMALL, run_before=run_before))


def rows(app: VaultApp, table: str) -> int:
    try:
        return app.screen.query_one(table, DataTable).row_count
    except Exception:  # not mounted yet
        return 0


def test_dashboard(snap_compare: Any, demo_app: Callable[[], VaultApp]) -> None:
    """Three sources (completed, partial, failed), a running backup at 37%, storage
    against a 1 MiB quota, the next scheduled runs and the alerts."""

    def loaded(app: VaultApp) -> bool:
        return (isinstance(app.screen, DashboardScreen) and rows(app, "#sources") == 3
                and len(app.screen.query(JobProgress)) == 1)

    assert shot(snap_compare, demo_app(), ready=loaded)


def test_the_snapshot_vault_is_the_same_on_every_build(fs: Any) -> None:
    """What the snapshots rest on: two builds give the same bytes (repository, journal),
    and nothing in the journal took the real clock."""
    with built():
        first = fs.dir_digest(ROOT)
        build(ROOT)
        assert fs.dir_digest(ROOT) == first
        conn = sqlite3.connect(ROOT / "state" / "journal.db")
        try:
            times = [row[0] for row in conn.execute("SELECT recorded_at FROM events")]
        finally:
            conn.close()
    assert times and max(datetime.fromisoformat(t) for t in times) < NOW


def test_history(snap_compare: Any, demo_app: Callable[[], VaultApp]) -> None:
    """The snapshot table, newest first, with the line under it describing the row under
    the cursor."""
    from vault_tui.screens.history import HistoryScreen

    def loaded(app: VaultApp) -> bool:
        return isinstance(app.screen, HistoryScreen) and rows(app, "#snapshots") >= 2

    assert shot(snap_compare, demo_app(), press=["2"], ready=loaded)


# --- the restore browser -------------------------------------------------------------------

NEWEST_DOCS = "2026-03-02T02:00:01+00:00"


async def browse_docs(app: VaultApp, pilot: Pilot[None]) -> None:
    """Key 3: the newest snapshot, the newest of docs, is open, its one path expanded;
    2026/ expanded too (its files with their sizes), then marked."""
    await open_restore(app, pilot)
    assert await expand(app, pilot, "2026/") == ["budget.ods  12.0 KiB", "plan.xlsx  59.6 KiB"]
    await mark(app, pilot, "2026/")


def browsing(app: VaultApp) -> bool:
    """The newest docs snapshot's tree read two levels down, 2026/ marked and said so."""
    if not isinstance(app.screen, RestoreScreen) or app.screen.choice is None:
        return False
    choice, top, marked = app.screen.choice, find(app, "/srv/app/docs/"), find(app, "2026/")
    return (choice.name == "docs" and datetime.fromisoformat(choice.time)
            == datetime.fromisoformat(NEWEST_DOCS)
            and top is not None and len(top.children) == 4
            and marked is not None and is_marked(marked) and len(marked.children) == 2
            and "2026" in str(app.screen.query_one("#selection").render()))


def test_restore_browser(snap_compare: Any, demo_app: Callable[[], VaultApp]) -> None:
    """The newest docs snapshot as a tree: /srv/app/docs open with its files and their
    sizes, 2026/ open and marked; beside it what is marked, and the options that change
    nothing: merge, skip, into a new directory beside the working directory."""
    assert shot(snap_compare, demo_app(), drive=browse_docs, ready=browsing)


def test_restore_browser_preview(snap_compare: Any,
                                 demo_app: Callable[[], VaultApp]) -> None:
    """The same, after p: the plan of restoring 2026/ into a target that does not exist,
    every item created, in view below the options."""

    def previewed(app: VaultApp) -> bool:
        if not browsing(app):
            return False
        assert isinstance(app.screen, RestoreScreen)
        preview = app.screen.preview_shown
        return preview is not None and preview.plan["totals"].get("create") == 3 and not any(
            count for action, count in preview.plan["totals"].items() if action != "create")

    assert shot(snap_compare, demo_app(), drive=browse_docs, press=["p"], ready=previewed)
