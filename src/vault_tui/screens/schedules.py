"""Schedules: every schedule with its next run and last result; pause, resume, run now,
and the retention editor for schedules kept in the journal (`vault schedule add`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from vault.config.model import Retention
from vault.errors import VaultError
from vault_tui import schedule_actions
from vault_tui.context import PassphraseNeeded
from vault_tui.data.schedules import (
    RETENTION_FIELDS,
    ScheduleRow,
    load_schedules,
    parse_retention,
    retention_fields,
)
from vault_tui.format import age
from vault_tui.navbar import NavBar
from vault_tui.screens.base import VaultScreen

#: the colour class of a run's result (NO_COLOR shows the word alone)
RESULT_CLASS = {"completed": "ok", "queued": "dim", "partial": "warn", "failed": "bad"}


def when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone():%Y-%m-%d %H:%M}"


class SchedulesScreen(VaultScreen[list[ScheduleRow]]):
    CSS_PATH = "schedules.tcss"
    BINDINGS = [
        Binding("p", "pause", "Pause"),
        Binding("u", "resume", "Resume"),
        Binding("r", "run_now", "Run now"),
        Binding("e", "edit_retention", "Edit retention"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, ScheduleRow] = {}

    def compose(self) -> ComposeResult:
        yield NavBar("schedules")
        with Vertical(id="schedules-body"):
            yield Label("Schedules", classes="section")
            table: DataTable[str] = DataTable(id="schedule-table", cursor_type="row",
                                              zebra_stripes=True)
            yield table
            yield Static("", id="schedule-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#schedule-table", DataTable)
        table.add_columns("name", "state", "next run", "last run", "result", "cron",
                          "timezone")
        super().on_mount()

    def load(self) -> list[ScheduleRow]:
        return load_schedules(self.ctx, self.now())

    def show(self, data: list[ScheduleRow]) -> None:
        self.rows = {row.name: row for row in data}
        table: DataTable[str] = self.query_one("#schedule-table", DataTable)
        selected = self.selected()
        table.clear()
        for row in data:
            view = row.view
            table.add_row(view.name, "paused" if view.paused else "active",
                          "paused" if view.paused else when(view.next_run),
                          when(view.last_run_at), view.last_result or "-", view.cron,
                          view.timezone, key=view.name)
        names = list(self.rows)
        if selected is not None and selected.name in self.rows:
            table.move_cursor(row=names.index(selected.name))
        self._show_detail()

    def selected(self) -> ScheduleRow | None:
        table: DataTable[str] = self.query_one("#schedule-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(key or "")

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#schedule-detail", Static)
        row = self.selected()
        if row is None:
            detail.update("No schedules. Add one to vault.toml ([[schedules]]) or with "
                          "`vault schedule add`.")
            detail.set_class(False, "bad")
            return
        view = row.view
        origin = ("added with `vault schedule add`" if row.editable
                  else "defined in vault.toml: change it there")
        own = "its own" if row.retention is not None else "from [retention]"
        last = "never ran" if view.last_run_at is None else \
            f"last run {age(view.last_run_at, self.now())} ago: {view.last_result or '-'}"
        lines = [
            f"{view.name}: {view.cron} ({view.timezone}), {origin}",
            f"sources: {', '.join(view.sources) or 'every source'}"
            f"   tags: {', '.join(view.tags) or '-'}"
            f"   catch-up: {'yes' if view.catch_up else 'no'}",
            f"{last}; missed runs: {view.missed_total}",
            f"retention ({own}): {row.policy}"
            + ("; then a prune is queued" if view.prune else ""),
        ]
        detail.update("\n".join(lines))
        detail.set_class(view.last_result in ("failed", "partial"), "bad")

    # --- actions --------------------------------------------------------------------------

    def action_pause(self) -> None:
        if (row := self.selected()) is not None:
            self.change("pause", schedule_actions.pause, row.name)

    def action_resume(self) -> None:
        if (row := self.selected()) is not None:
            self.change("resume", schedule_actions.resume, row.name)

    def action_run_now(self) -> None:
        if (row := self.selected()) is not None:
            self.change("run now", schedule_actions.run, row.name)

    def action_edit_retention(self) -> None:
        row = self.selected()
        if row is None:
            return
        if not row.editable:
            self.vault_app.show_error(row.refusal())
            return

        def edited(choice: RetentionChoice | None) -> None:
            if choice is not None:
                self.change("retention", schedule_actions.set_retention, row.name,
                            choice.retention)

        self.app.push_screen(RetentionModal(row), edited)

    def change(self, title: str, action: Callable[..., str], *args: object) -> None:
        """Run a schedule_actions function in a thread; tell the operator what it did."""
        self._change(title, action, args)

    @work(thread=True, group="schedule-action")
    def _change(self, title: str, action: Callable[..., str], args: tuple[object, ...]) -> None:
        try:
            said = action(self.ctx, *args)
        except PassphraseNeeded as needed:  # not needed by these actions; kept for safety
            self.app.call_from_thread(self.vault_app.ask_passphrase, needed.wrong,
                                      lambda: self.change(title, action, *args))
            return
        except VaultError as exc:
            self.app.call_from_thread(self.vault_app.show_error, f"{title}: {exc.message}")
            return
        self.app.call_from_thread(self.app.notify, said, timeout=4)
        self.app.call_from_thread(self.reload)


@dataclass(frozen=True)
class RetentionChoice:
    """What the editor saved: a policy, or None to fall back to [retention]."""

    retention: Retention | None


class RetentionModal(ModalScreen[RetentionChoice | None]):
    """The retention of one schedule: a count per calendar bucket, a `within` duration
    and tags to keep. Empty fields switch a rule off; all empty: the top-level
    [retention] applies. Checked as vault.toml would be before it is saved."""

    CSS_PATH = "schedules.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, row: ScheduleRow) -> None:
        super().__init__(classes="vault-modal")
        self.row = row

    def compose(self) -> ComposeResult:
        values = retention_fields(self.row.retention)
        with Vertical(id="dialog"):
            yield Label(f"Retention of schedule {self.row.name}", classes="title")
            yield Static("Counts are snapshots per hour/day/...; within: e.g. 30d;"
                         " tags: comma-separated. All empty: use [retention].",
                         classes="dim", markup=False)
            with Grid(id="retention-form"):
                for key, label in RETENTION_FIELDS:
                    yield Label(label)
                    yield Input(values[key], id=key, compact=True,
                                type="integer" if key not in ("keep_within", "keep_tags")
                                else "text")
            yield Static("", id="form-error", classes="bad", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#{key}", Input).value for key, _ in RETENTION_FIELDS}

    def action_save(self) -> None:
        try:
            retention = parse_retention(self.values())
        except ValueError as exc:
            self.query_one("#form-error", Static).update(str(exc))
            return
        self.dismiss(RetentionChoice(retention))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)
