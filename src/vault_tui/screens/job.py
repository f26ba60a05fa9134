"""One job: its row of the `jobs` projection (kind, status, phase, times, worker, attempt,
error), a live progress bar while it runs, and its event stream with errors highlighted.
It reloads whenever the journal moves, so a running job's bar follows the worker."""

from __future__ import annotations

from datetime import date
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, ProgressBar, Static

from vault_tui.data.jobs import JobDetail, JobRow, read_job
from vault_tui.data.journal import EventLine
from vault_tui.format import duration, human_bytes, rate
from vault_tui.navbar import NavBar
from vault_tui.screens.base import VaultScreen
from vault_tui.screens.journal import open_event

STATUS_COLOUR = {"completed": "success", "partial": "warning", "failed": "error",
                 "interrupted": "error", "cancelled": "warning"}
LEVEL_COLOUR = {"error": "error", "warn": "warning"}


class JobScreen(VaultScreen[JobDetail]):
    CSS_PATH = "job.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("o", "open_event", "Show the event's payload", show=False),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.detail: JobDetail | None = None

    def compose(self) -> ComposeResult:
        yield NavBar(None)
        with Vertical(id="job-head"):
            yield Static(f"job {self.job_id}", id="job-title", markup=False)
            yield Static("", id="job-facts", markup=False)
            yield ProgressBar(total=None, show_eta=False, id="job-progress")
            yield Static("", id="job-figures", markup=False)
            yield Static("", id="job-error", markup=False)
        yield DataTable(id="job-events", cursor_type="row", zebra_stripes=True)
        yield Static("", id="job-note", classes="dim", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.table
        for key in ("time", "type", "summary"):
            table.add_column(key, key=key)
        table.focus()
        super().on_mount()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#job-events", DataTable)

    def load(self) -> JobDetail:
        return read_job(self.ctx.config().journal_path(), self.job_id)

    def show(self, data: JobDetail) -> None:
        if data == self.detail:
            return  # the journal moved for another job
        self.detail = data
        self.sub_title = self.job_id
        job = data.job
        title = self.query_one("#job-title", Static)
        if job is None:
            title.update(f"job {self.job_id}: not in the journal"
                         + (" (its events follow)" if data.events else ""))
        else:
            colour = self.app.theme_variables.get(STATUS_COLOUR.get(job.status, ""), "")
            title.update(Text.assemble((f"{job.kind} ", "bold"), (job.job_id + " "),
                                       (job.status, f"bold {colour}".strip()),
                                       f" [{job.phase}]" if job.phase and job.active else ""))
        self.query_one("#job-facts", Static).update(_facts(job) if job else "")
        self._show_progress(job)
        error = self.query_one("#job-error", Static)
        message = job.error if job is not None else None
        error.update(message or "")
        error.display = message is not None
        self._show_events(data.events)
        note = self.query_one("#job-note", Static)
        note.update(f"{data.earlier} earlier event(s) not shown" if data.earlier else "")
        note.display = bool(data.earlier)

    def _show_progress(self, job: JobRow | None) -> None:
        bar = self.query_one("#job-progress", ProgressBar)
        figures = self.query_one("#job-figures", Static)
        running = job is not None and job.active
        bar.display = figures.display = running
        if job is None or not running:
            return
        if job.bytes_total:
            bar.update(total=job.bytes_total, progress=job.bytes_done or 0)
        if job.bytes_done is None:
            figures.update("waiting for a worker" if job.status != "running" else "starting")
            return
        total = f" of {human_bytes(job.bytes_total)}" if job.bytes_total else ""
        items = f", {job.items_done} of {job.items_total} item(s)" if job.items_total else ""
        figures.update(f"{human_bytes(job.bytes_done)}{total}{items}  {rate(job.rate_bps)}"
                       f"  ETA {duration(job.eta_seconds)}")

    def _show_events(self, events: list[EventLine]) -> None:
        """The events, oldest first; a cursor on the last row follows new ones."""
        table = self.table
        following = table.cursor_row >= table.row_count - 1
        cursor = table.cursor_row
        table.clear()
        for line in events:
            colour = LEVEL_COLOUR.get(line.level)
            style = self.app.theme_variables.get(colour, "") if colour else ""
            table.add_row(line.recorded_at.astimezone().strftime("%m-%d %H:%M:%S"),
                          Text(line.type, style=style), Text(line.summary, style=style),
                          key=str(line.seq))
        if events:
            table.move_cursor(row=len(events) - 1 if following else min(cursor,
                                                                         len(events) - 1))

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open_event()

    def action_open_event(self) -> None:
        row = self.table.cursor_row
        if self.detail is not None and 0 <= row < len(self.detail.events):
            open_event(self, self.detail.events[row].seq)


def _facts(job: JobRow) -> str:
    """Two short lines: when, and who/where/what came of it."""
    times: list[str] = []
    day: date | None = None
    for name, moment in (("requested", job.requested_at), ("started", job.started_at),
                         ("finished", job.finished_at)):
        if moment is not None:
            local = moment.astimezone()
            # the date once, then only when it changes
            shown = f"{local:%H:%M:%S}" if local.date() == day else f"{local:%Y-%m-%d %H:%M:%S}"
            times.append(f"{name} {shown}")
            day = local.date()
    took = ""
    if job.started_at and job.finished_at:
        took = f" (took {duration((job.finished_at - job.started_at).total_seconds())})"
    who = [f"worker {job.worker}" if job.worker else "no worker yet" if job.active else "",
           f"attempt {job.attempt}" if job.attempt else "",
           f"by {job.actor_user}" if job.actor_user else "",
           f"snapshot {job.snapshot_id[:8]}" if job.snapshot_id else ""]
    return "  ".join(times) + took + "\n" + "  ".join(part for part in who if part)
