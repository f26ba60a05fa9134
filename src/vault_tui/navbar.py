"""The top line of every screen: the six screens with their number keys, the one in front
highlighted, each clickable; the screen's subtitle (the repository, a job id) at the right
when the terminal is wide enough.

It replaces Textual's header so that at 80 columns the way around is always on screen:
the footer then only has to hold the screen's own keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.widgets import Static

#: the top-level screens (app modes) in the order of their number keys
TABS: tuple[tuple[str, str], ...] = (
    ("dashboard", "Dashboard"),
    ("history", "History"),
    ("restore", "Restore"),
    ("schedules", "Schedules"),
    ("journal", "Journal"),
    ("settings", "Settings"),
)

TITLE = " vault "
GAP = "  "


@dataclass(frozen=True)
class NavLine:
    text: Text
    spans: tuple[tuple[int, int, str], ...]  # (start, end, mode) of each clickable tab


def nav_line(current: str | None, width: int, subtitle: str = "") -> NavLine:
    """The line for `width` columns. Pure: the tabs always (76 columns), the subtitle only
    where it fits whole or shortened from the left (`…/repo`)."""
    text = Text(TITLE, style="bold")
    spans = []
    for number, (mode, title) in enumerate(TABS, start=1):
        if number > 1:
            text.append(GAP)
        start = len(text)
        label = f"{number} {title}"
        if mode == current:
            text.append(f"{number} ", style="bold reverse")
            text.append(title, style="bold reverse")
        else:
            text.append(f"{number} ", style="bold")
            text.append(title, style="dim")
        spans.append((start, start + len(label), mode))
    room = width - len(text) - 3
    if subtitle and room >= 8:
        shown = subtitle if len(subtitle) <= room else "…" + subtitle[-(room - 1):]
        text.append(" " * (width - len(text) - len(shown) - 1))
        text.append(shown, style="dim")
    return NavLine(text, tuple(spans))


class NavBar(Static):
    """`nav_line` on screen; a click on a tab switches to that screen."""

    DEFAULT_CSS = """
    NavBar {
        height: 1;
        width: 1fr;
        background: $panel;
    }
    """

    def __init__(self, current: str | None) -> None:
        super().__init__("", markup=False)
        self.current = current
        self._line = nav_line(current, 80)

    def on_mount(self) -> None:
        self.watch(self.screen, "sub_title", self._refresh_line)

    def on_resize(self, _event: events.Resize) -> None:
        self._refresh_line()

    def _refresh_line(self, _subtitle: str | None = None) -> None:
        self._line = nav_line(self.current, self.size.width or 80, self.screen.sub_title or "")
        self.update(self._line.text)

    def on_click(self, event: events.Click) -> None:
        for start, end, mode in self._line.spans:
            if start <= event.x < end:
                event.stop()
                self.app.switch_mode(mode)
                return
