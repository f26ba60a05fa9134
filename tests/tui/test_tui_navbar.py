"""The nav bar on top of every screen: the six screens and their keys always fit in 80
columns, the one in front is highlighted, a click on a tab switches to it, and the
screen's subtitle (the repository) is shown where there is room."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tui_helpers import LARGE, SMALL, wait_for

from vault_tui.navbar import TABS, NavBar, nav_line
from vault_tui.screens.dashboard import DashboardScreen
from vault_tui.screens.schedules import SchedulesScreen


def test_the_line_holds_every_tab_in_80_columns_and_the_subtitle_where_it_fits() -> None:
    line = nav_line("history", 80, "/srv/backups/repository")
    plain = line.text.plain
    assert len(plain) <= 80
    assert [plain[start:end] for start, end, _ in line.spans] == [
        f"{n} {title}" for n, (_, title) in enumerate(TABS, start=1)]
    assert [mode for _, _, mode in line.spans] == [mode for mode, _ in TABS]
    assert "/srv" not in plain  # no room for it at 80 columns
    highlighted = {plain[span.start:span.end] for span in line.text.spans
                   if "reverse" in str(span.style)}
    assert highlighted == {"2 ", "History"}

    wide = nav_line(None, 120, "/srv/backups/repository").text.plain
    assert len(wide) == 119 and wide.endswith(" /srv/backups/repository")
    narrow = nav_line(None, 90, "/srv/backups/repository").text.plain
    assert len(narrow) == 89 and narrow.endswith(" …repository")


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_a_click_on_a_tab_switches_to_its_screen(
        vault_repo: Any, files_source: Path, make_app: Any, size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await wait_for(lambda: isinstance(app.screen, DashboardScreen), pilot)
        bar = app.screen.query_one(NavBar)
        repository = str(vault_repo.env.repo)
        await wait_for(lambda: app.screen.sub_title == repository, pilot)
        shown = str(bar.render())
        assert "1 Dashboard" in shown and "6 Settings" in shown
        assert (repository[-10:] in shown) == (size == LARGE)  # room at 120 columns only
        [(start, _end, _mode)] = [s for s in nav_line(None, size[0]).spans
                                  if s[2] == "schedules"]
        await pilot.click(NavBar, offset=(start + 2, 0))
        await wait_for(lambda: isinstance(app.screen, SchedulesScreen), pilot)
        await pilot.press("1")
        await wait_for(lambda: isinstance(app.screen, DashboardScreen), pilot)
