"""Journal: the event log, newest first, filterable, read a page at a time; the hash
chain's state on demand (`v`), and any event's full payload (Enter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static, TextArea

from vault.errors import VaultError
from vault_tui.data.journal import (
    PAGE_SIZE,
    EventDetail,
    EventFilter,
    EventLine,
    count_events,
    parse_event_filter,
    read_event,
    read_events,
)
from vault_tui.history_actions import ChainStatus, verify_journal
from vault_tui.navbar import NavBar
from vault_tui.screens.base import VaultScreen

LEVEL_COLOUR = {"error": "error", "warn": "warning"}
#: rows from the end of the table at which the next (older) page is read
LOAD_AHEAD = 10


@dataclass(frozen=True)
class JournalPage:
    """What a load found: the newest page (`events`), or only how many newer events wait
    while the operator reads further down (`newer`)."""

    generation: int
    events: list[EventLine] | None
    has_more: bool = False
    newer: int = 0


class JournalScreen(VaultScreen[JournalPage]):
    CSS_PATH = "journal.tcss"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("v", "verify_chain", "Verify chain"),
        Binding("g", "newest", "Newest"),
        Binding("m", "older", "Older events", show=False),
        Binding("o", "open_event", "Show the event's payload", show=False),
        Binding("escape", "leave_filter", "Back to the table", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = EventFilter()
        self.lines: list[EventLine] = []  # newest first, as in the table
        self.has_more = False
        self.newer = 0
        self.generation = 0  # bumped when the filter changes: older loads are dropped
        self._request: tuple[int, EventFilter, int | None] = (0, self.filter, None)
        self._loading_older = False
        self._filter_error: str | None = None

    def compose(self) -> ComposeResult:
        yield NavBar("journal")
        with Horizontal(id="journal-bar"):
            yield Label("filter", id="journal-filter-label")
            yield Input(id="journal-filter", compact=True,
                        placeholder="type:Backup actor:root stream:JOB since:2026-11-01 "
                                    "until:... words")
        yield Static("hash chain not checked yet: press v", id="journal-chain",
                     classes="dim", markup=False)
        yield DataTable(id="events", cursor_type="row", zebra_stripes=True)
        yield Static("", id="journal-detail", markup=False)
        yield Static("", id="journal-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.table
        for key in ("seq", "time", "type", "summary", "actor", "stream"):
            table.add_column(key, key=key)
        table.focus()
        super().on_mount()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#events", DataTable)

    # --- loading ------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the newest page when the operator is at the top (following the journal)
        or nothing is shown yet; otherwise only count what is newer, and leave the rows
        being read where they are."""
        following = not self.lines or self.table.cursor_row <= 0
        newest = None if following else self.lines[0].seq
        self._request = (self.generation, self.filter, newest)
        super().reload()

    def load(self) -> JournalPage:
        generation, wanted, newest = self._request
        path = self.ctx.config().journal_path()
        if newest is not None:
            return JournalPage(generation, None, newer=count_events(path, wanted, newest))
        events = read_events(path, wanted, limit=PAGE_SIZE + 1)
        return JournalPage(generation, events[:PAGE_SIZE], has_more=len(events) > PAGE_SIZE)

    def show(self, data: JournalPage) -> None:
        if data.generation != self.generation:
            return  # read for a filter no longer in force
        if data.events is None:
            self.newer = data.newer
        elif data.events == self.lines and self.table.row_count == len(self.lines):
            self.has_more, self.newer = data.has_more, 0  # nothing new matches the filter
        else:
            self.lines, self.has_more, self.newer = data.events, data.has_more, 0
            self._fill(reset=True)
        self.show_detail()

    def _fill(self, reset: bool, start: int = 0) -> None:
        table = self.table
        if reset:
            table.clear()
        for line in self.lines[start:]:
            table.add_row(*self._cells(line), key=str(line.seq))
        if reset and self.lines:
            table.move_cursor(row=0)

    def _cells(self, line: EventLine) -> list[str | Text]:
        colour = LEVEL_COLOUR.get(line.level)
        style = self.app.theme_variables.get(colour, "") if colour else ""
        return [str(line.seq), line.recorded_at.astimezone().strftime("%m-%d %H:%M:%S"),
                Text(line.type, style=style), Text(_clip(line.summary, 64), style=style),
                line.actor, _clip(line.stream_id, 28)]

    def action_older(self) -> None:
        if not self.has_more or self._loading_older or not self.lines:
            return
        self._loading_older = True
        self._load_older(self.generation, self.filter, self.lines[-1].seq)

    @work(thread=True, exclusive=True, group="journal-older")
    def _load_older(self, generation: int, wanted: EventFilter, before: int) -> None:
        try:
            events = read_events(self.ctx.config().journal_path(), wanted,
                                 before_seq=before, limit=PAGE_SIZE + 1)
        except VaultError as exc:
            self.app.call_from_thread(self._older_failed, exc.message)
            return
        self.app.call_from_thread(self._show_older, generation, events)

    def _older_failed(self, message: str) -> None:
        self._loading_older = False
        self.vault_app.show_error(message)

    def _show_older(self, generation: int, events: list[EventLine]) -> None:
        self._loading_older = False
        if generation != self.generation:
            return
        start = len(self.lines)
        self.lines += events[:PAGE_SIZE]
        self.has_more = len(events) > PAGE_SIZE
        self._fill(reset=False, start=start)
        self.show_detail()

    def action_newest(self) -> None:
        """Back to the top, with the newest page read again."""
        self.table.move_cursor(row=0)
        self.reload()

    # --- what the cursor is on ------------------------------------------------------------

    def current_line(self) -> EventLine | None:
        row = self.table.cursor_row
        return self.lines[row] if 0 <= row < len(self.lines) else None

    def show_detail(self) -> None:
        line = self.current_line()
        detail = "no events" if line is None else \
            f"seq {line.seq} in {line.stream_id}, by {line.actor}"
        self.query_one("#journal-detail", Static).update(detail)
        status = self.query_one("#journal-status", Static)
        status.set_class(self._filter_error is not None, "bad")
        if self._filter_error is not None:
            status.update(self._filter_error)
            return
        more = "; older below (m)" if self.has_more else ""
        newer = f"; {self.newer} newer (g)" if self.newer else ""
        status.update(f"{len(self.lines)} event(s) shown{more}{newer}")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        if event.cursor_row >= len(self.lines) - LOAD_AHEAD:
            self.action_older()

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open_event()

    def action_open_event(self) -> None:
        line = self.current_line()
        if line is not None:
            open_event(self, line.seq)

    # --- the filter -----------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one("#journal-filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.table.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            wanted = parse_event_filter(event.value)
        except VaultError as exc:
            self._filter_error = exc.message  # the filter in force stays as it was
            self.show_detail()
            return
        self._filter_error = None
        self.filter, self.lines, self.has_more = wanted, [], False
        self.generation += 1
        self.table.clear()
        self.table.focus()
        self.reload()

    # --- the hash chain -------------------------------------------------------------------

    def action_verify_chain(self) -> None:
        chain = self.query_one("#journal-chain", Static)
        chain.update("checking the hash chain...")
        self._verify()

    @work(thread=True, exclusive=True, group="journal-verify")
    def _verify(self) -> None:
        try:
            status = verify_journal(self.ctx)
        except VaultError as exc:
            self.app.call_from_thread(self._show_chain, None, exc.message)
            return
        self.app.call_from_thread(self._show_chain, status, None)

    def _show_chain(self, status: ChainStatus | None, error: str | None) -> None:
        chain = self.query_one("#journal-chain", Static)
        chain.remove_class("dim")
        chain.set_class(status is None or not status.ok, "bad")
        chain.set_class(status is not None and status.ok, "ok")
        if status is None:
            chain.update(f"cannot check the hash chain: {error}")
        else:
            chain.update(chain_text(status))


def chain_text(status: ChainStatus) -> str:
    head = f"head hash {status.last_good_hash}" if status.last_good_hash else "empty"
    if status.ok:
        return f"chain intact up to seq {status.last_good_seq}, {head}"
    return (f"chain BROKEN at seq {status.first_bad_seq}: {status.reason}; intact up to "
            f"seq {status.last_good_seq}")


def open_event(screen: VaultScreen[Any], seq: int) -> None:
    """Read event `seq` in a thread and show it in full in a dialog."""

    def load() -> None:
        try:
            detail = read_event(screen.ctx.config().journal_path(), seq)
        except VaultError as exc:
            screen.app.call_from_thread(screen.vault_app.show_error, exc.message)
            return
        if detail is not None:
            screen.app.call_from_thread(screen.app.push_screen, EventModal(detail))

    screen.run_worker(load, thread=True, group="event-detail")


class EventModal(ModalScreen[None]):
    """One event in full: where and when it was recorded, by whom, and its payload as
    pretty JSON (the journal refuses secret-looking keys, so a payload holds none)."""

    CSS_PATH = "journal.tcss"
    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, event: EventDetail) -> None:
        super().__init__(classes="vault-modal")
        self.event = event

    def compose(self) -> ComposeResult:
        e = self.event
        actor = e.actor if isinstance(e.actor, dict) else {}
        ssh = f" over SSH from {actor['ssh_client']}" if actor.get("ssh_client") else ""
        with Vertical(id="dialog", classes="event-dialog"):
            yield Label(f"seq {e.seq}: {e.type} (schema {e.schema_version})", classes="title")
            yield Static(f"stream {e.stream_id} version {e.stream_version}\n"
                         f"recorded {e.recorded_at.astimezone():%Y-%m-%d %H:%M:%S %Z} by "
                         f"{actor.get('user', '?')}@{actor.get('host', '?')}{ssh}\n"
                         f"hash {e.hash}", id="event-meta", markup=False)
            yield TextArea(e.payload_json(), read_only=True, id="event-payload",
                           show_line_numbers=False, soft_wrap=True)
            yield Button("Close", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#event-payload", TextArea).focus()

    def on_button_pressed(self) -> None:
        self.dismiss()

    def action_close(self) -> None:
        self.dismiss()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
