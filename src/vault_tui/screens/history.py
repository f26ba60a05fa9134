"""History: every snapshot the journal saw made, sortable and filterable, with marks for
bulk forget, verify and export. Enter opens the snapshot's backup job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from vault.errors import VaultError
from vault_tui import actions, history_actions
from vault_tui.context import PassphraseNeeded
from vault_tui.data.history import (
    HistoryFilter,
    SnapshotRow,
    parse_history_filter,
    read_snapshots,
    shown_rows,
)
from vault_tui.format import human_bytes
from vault_tui.navbar import NavBar
from vault_tui.screens.base import VaultScreen
from vault_tui.screens.modals import ConfirmModal, TypedConfirmModal

#: (column key, label); the keys of date, name and size are also sort orders
COLUMNS = (("mark", " "), ("date", "date"), ("name", "source/paths"), ("type", "type"),
           ("status", "status"), ("size", "size"), ("new", "new"), ("tags", "tags"),
           ("id", "id"))
#: the theme colour of a snapshot's status (NO_COLOR shows the word alone)
STATUS_COLOUR = {"partial": "warning", "corrupted": "error", "repaired": "warning",
                 "forgotten": "text-muted"}
MARK = "●"


class HistoryScreen(VaultScreen[list[SnapshotRow]]):
    CSS_PATH = "history.tcss"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("a", "mark_all", "Mark all shown", show=False),
        Binding("f", "forget", "Forget"),
        Binding("v", "verify", "Verify"),
        Binding("e", "export", "Export"),
        Binding("p", "prune", "Prune: free what forgotten snapshots held (queued)", show=False),
        Binding("r", "restore", "Restore this"),
        Binding("d", "sort('date')", "Sort by date", show=False),
        Binding("z", "sort('size')", "Sort by size", show=False),
        Binding("n", "sort('name')", "Sort by name", show=False),
        Binding("o", "open_job", "Open the snapshot's job", show=False),
        Binding("escape", "leave_filter", "Back to the table", show=False),
    ]

    class SnapshotChosen(Message):
        """Posted to the restore screen by `r`: restore this snapshot (the restore
        browser opens it in its picker)."""

        def __init__(self, snapshot_id: str) -> None:
            super().__init__()
            self.snapshot_id = snapshot_id

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[SnapshotRow] = []  # every snapshot, as loaded
        self.shown: list[SnapshotRow] = []  # filtered and sorted, as in the table
        self.marked: set[str] = set()
        self.filter = HistoryFilter()
        self.sort_by = "date"
        self.descending = True
        self._filter_error: str | None = None
        self._loaded = False

    def compose(self) -> ComposeResult:
        yield NavBar("history")
        with Horizontal(id="history-bar"):
            yield Label("filter", id="history-filter-label")
            yield Input(id="history-filter", compact=True,
                        placeholder="source:docs type:files status:partial tag:x "
                                    "since:2026-11-01 until:... words")
        yield DataTable(id="snapshots", cursor_type="row", zebra_stripes=True)
        yield Static("", id="history-detail", markup=False)
        yield Static("", id="history-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#snapshots", DataTable).focus()
        super().on_mount()

    def load(self) -> list[SnapshotRow]:
        return read_snapshots(self.ctx.config().journal_path())

    def show(self, data: list[SnapshotRow]) -> None:
        if self._loaded and data == self.rows:
            return  # the journal moved (a backup's progress, say), the snapshots did not
        self._loaded = True
        self.rows = data
        self.render_rows()

    # --- the table --------------------------------------------------------------------

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#snapshots", DataTable)

    def render_rows(self) -> None:
        """Fill the table from `rows` through the filter and the sort, keeping the cursor
        on the same snapshot and the marks of snapshots still shown."""
        table = self.table
        current = self.current_row()
        self.shown = shown_rows(self.rows, self.filter, self.sort_by, self.descending)
        self.marked &= {row.snapshot_id for row in self.shown}
        table.clear(columns=True)
        arrow = " ▼" if self.descending else " ▲"
        for key, label in COLUMNS:
            table.add_column(label + (arrow if key == self.sort_by else ""), key=key)
        for row in self.shown:
            table.add_row(*self._cells(row), key=row.snapshot_id)
        if current is not None and current.snapshot_id in {r.snapshot_id for r in self.shown}:
            table.move_cursor(row=table.get_row_index(current.snapshot_id))
        self.show_detail()

    def _cells(self, row: SnapshotRow) -> list[str | Text]:
        colour = STATUS_COLOUR.get(row.status)
        style = self.app.theme_variables.get(colour, "") if colour else ""
        return [MARK if row.snapshot_id in self.marked else " ",
                row.time.astimezone().strftime("%Y-%m-%d %H:%M"), _clip(row.name, 24),
                row.source_type, Text(row.status, style=style), human_bytes(row.bytes_raw),
                human_bytes(row.bytes_new), _clip(",".join(row.tags), 16), row.short_id]

    def current_row(self) -> SnapshotRow | None:
        table = self.table
        if not self.shown or table.row_count == 0:
            return None
        index = min(max(table.cursor_row, 0), len(self.shown) - 1)
        return self.shown[index]

    def show_detail(self) -> None:
        row = self.current_row()
        detail = "no snapshots" if not self.rows else "no snapshot matches the filter"
        if row is not None:
            detail = (f"{row.short_id} {row.backup_type} of {', '.join(row.paths)} on "
                      f"{row.host}, job {row.job_id}")
        self.query_one("#history-detail", Static).update(detail)
        status = self.query_one("#history-status", Static)
        status.set_class(self._filter_error is not None, "bad")
        if self._filter_error is not None:
            status.update(self._filter_error)
            return
        marked = f", {len(self.marked)} marked" if self.marked else ""
        status.update(f"{len(self.shown)} of {len(self.rows)} snapshot(s){marked}; "
                      f"{_order(self.sort_by, self.descending)}  (d date, z size, n name)")

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a snapshot opens the job that made it."""
        self.action_open_job()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on the date, source or size header sorts by it (again: reverses)."""
        key = str(event.column_key.value)
        if key in ("date", "name", "size"):
            self.action_sort(key)

    # --- filter and sort ----------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one("#history-filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.table.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "history-filter":
            return
        try:
            self.filter = parse_history_filter(event.value)
        except VaultError as exc:
            self._filter_error = exc.message  # the filter in force stays as it was
            self.show_detail()
            return
        self._filter_error = None
        self.render_rows()
        self.table.focus()

    def action_sort(self, by: str) -> None:
        if by == self.sort_by:
            self.descending = not self.descending
        else:
            self.sort_by, self.descending = by, by != "name"
        self.render_rows()

    # --- marks --------------------------------------------------------------------------

    def action_toggle_mark(self) -> None:
        row = self.current_row()
        if row is None:
            return
        self.marked ^= {row.snapshot_id}
        self.table.update_cell(row.snapshot_id, "mark",
                               MARK if row.snapshot_id in self.marked else " ")
        self.table.action_cursor_down()
        self.show_detail()

    def action_mark_all(self) -> None:
        shown = {row.snapshot_id for row in self.shown}
        self.marked = set() if shown and shown <= self.marked else shown
        self.render_rows()

    def targets(self) -> list[SnapshotRow]:
        """The marked snapshots (in table order), or the one under the cursor; never a
        forgotten one (it is gone from the repository already)."""
        chosen = [row for row in self.shown if row.snapshot_id in self.marked]
        if not chosen and (current := self.current_row()) is not None:
            chosen = [current]
        return [row for row in chosen if row.status != "forgotten"]

    # --- bulk actions -------------------------------------------------------------------

    def action_forget(self) -> None:
        rows = self.targets()
        if not rows:
            self.notify("nothing to forget", severity="warning")
            return
        ids = ", ".join(row.short_id for row in rows[:6]) + (", ..." if len(rows) > 6 else "")
        what = (f"Forget {len(rows)} snapshot(s): {ids}? They are removed from the "
                "repository; their data stays until prune.")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_operation("forget", history_actions.forget,
                                   ([row.snapshot_id for row in rows],), self._forgotten)

        self.app.push_screen(TypedConfirmModal(what, f"forget {len(rows)}"), confirmed)

    def _forgotten(self, removed: list[str]) -> None:
        self.marked -= set(removed)
        self.notify(f"forgot {len(removed)} snapshot(s); p queues a prune to free their "
                    "space", timeout=4)
        self.reload()

    def action_verify(self) -> None:
        chosen = len(self.targets())
        question = ("Queue a verify of the whole repository for the worker? It checks every "
                    "snapshot's trees and blobs"
                    + (f", the {chosen} chosen here included" if chosen else "")
                    + "; the worker's verify cannot be limited to some snapshots.")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.queue_job("verify", actions.verify_repository)

        self.app.push_screen(ConfirmModal(question), confirmed)

    def action_prune(self) -> None:
        question = ("Queue a prune for the worker? It removes the data no snapshot references "
                    "any more (what forgotten snapshots held), next to running backups, and "
                    "frees that space (vault prune --queue).")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.queue_job("prune", actions.prune_repository)

        self.app.push_screen(ConfirmModal(question), confirmed)

    def action_export(self) -> None:
        rows = self.targets()
        if not rows:
            self.notify("nothing to export", severity="warning")
            return

        def chosen(answer: tuple[Path, Path | None] | None) -> None:
            if answer is not None:
                self.run_operation("export", history_actions.export, (rows, *answer),
                                   self._exported)

        self.app.push_screen(ExportModal(len(rows)), chosen)

    def _exported(self, result: history_actions.ExportResult) -> None:
        if result.files:
            self.notify(f"exported {len(result.files)} snapshot(s) to "
                        f"{result.files[0].parent}", timeout=6)
        if result.failed:
            first_id, first_error = result.failed[0]
            self.vault_app.show_error(f"export: {len(result.failed)} failed; {first_id}: "
                                      f"{first_error}")

    async def action_restore(self) -> None:
        row = self.current_row()
        await self.app.switch_mode("restore")
        if row is not None:
            self.app.screen.post_message(self.SnapshotChosen(row.snapshot_id))

    def action_open_job(self) -> None:
        row = self.current_row()
        if row is not None:
            self.vault_app.open_job(row.job_id)

    @work(thread=True, group="history-action")
    def run_operation(self, title: str, operation: Callable[..., Any], args: tuple[Any, ...],
                      done: Callable[[Any], None]) -> None:
        """`operation(ctx, *args)` in a thread; `done(result)` on the UI thread after."""
        try:
            result = operation(self.ctx, *args)
        except PassphraseNeeded as needed:
            self.app.call_from_thread(self.vault_app.ask_passphrase, needed.wrong,
                                      lambda: self.run_operation(title, operation, args, done))
            return
        except VaultError as exc:
            self.app.call_from_thread(self.vault_app.show_error, f"{title}: {exc.message}")
            return
        except Exception as exc:  # a bug must not take the operator's terminal away
            self.app.call_from_thread(self.vault_app.show_error,
                                      f"{title}: internal error: {type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(done, result)


class ExportModal(ModalScreen[tuple[Path, Path | None] | None]):
    """Where to export the chosen snapshots (one `<source>-<id>.vault` file each), and an
    optional passphrase file to encrypt them with (as `vault export --password-file`);
    without one they are encrypted with the repository's passphrase."""

    CSS_PATH = "history.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, count: int) -> None:
        super().__init__(classes="vault-modal")
        self.count = count

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Export {self.count} snapshot(s)", classes="title")
            yield Static("Directory (one file per snapshot):", markup=False)
            yield Input(str(Path.cwd()), id="export-dir")
            yield Static("Passphrase file to encrypt with (optional):", markup=False)
            yield Input(id="export-password-file",
                        placeholder="none: the repository's passphrase")
            with Horizontal(classes="buttons"):
                yield Button("Export", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self) -> None:
        self._finish()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._finish()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _finish(self) -> None:
        directory = self.query_one("#export-dir", Input).value.strip()
        password = self.query_one("#export-password-file", Input).value.strip()
        if directory:
            self.dismiss((Path(directory), Path(password) if password else None))


def _order(by: str, descending: bool) -> str:
    first, last = {"date": ("newest first", "oldest first"),
                   "size": ("largest first", "smallest first"),
                   "name": ("Z-A", "A-Z")}[by]
    return f"sorted by {by}, {first if descending else last}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
