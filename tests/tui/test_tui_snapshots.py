"""Snapshot tests: screens at 80x24 over the same vault on every run and machine
(snapshot_data.py builds it: seeded randomness, a frozen clock, a fixed path), with the
app's clock fixed too. The SVGs in __snapshots__/ were reviewed before they were accepted;
after an intended change, run with --snapshot-update and review the new ones (pytest
writes a report with both side by side when one differs).

A new screen is one test: `shot(snap_compare, demo_app(), press=[...], ready=...)` with
the keys that reach it and a condition on its widgets that says it has loaded."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import pytest
from snapshot_data import NOW, PASSWORD, ROOT, build, built
from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_helpers import SMALL, wait_for

from vault_tui.app import VaultApp
from vault_tui.context import TuiContext
from vault_tui.screens.dashboard import DashboardScreen, JobProgress

Ready = Callable[[VaultApp], bool]


@pytest.fixture
def demo_app() -> Iterator[Callable[[], VaultApp]]:
    """Apps over the snapshot tests' vault, held for this test only; in UTC, so that
    local times on screen are the same everywhere."""
    with built() as config, pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("VAULT_")]:
            patch.delenv(name)
        patch.setenv("VAULT_PASSWORD", PASSWORD)
        patch.setenv("HOME", str(ROOT / "home"))
        patch.setenv("TZ", "UTC")
        time.tzset()
        try:
            yield lambda: VaultApp(TuiContext(config_path=config), follow=False,
                                   clock=lambda: NOW)
        finally:
            patch.undo()
            time.tzset()


def shot(snap_compare: Any, app: VaultApp, *, ready: Ready,
         press: Iterable[str] = ()) -> bool:
    """The app at 80x24 after `press`, once `ready(app)` holds, against its snapshot."""

    async def run_before(pilot: Pilot[None]) -> None:
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
