"""The dashboard: last backup per source, running jobs with live progress, storage against
the quota, the next scheduled runs and the alerts. Keys to back up now and to verify."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static

from vault.operations.status import StatusReport
from vault.planning.status_report import ActiveJob, worker_summary
from vault_tui import actions
from vault_tui.data.status import Dashboard, dashboard
from vault_tui.format import age, duration, human_bytes, rate
from vault_tui.navbar import NavBar
from vault_tui.screens.base import VaultScreen

#: the colour of a backup's status (NO_COLOR shows the word alone)
STATUS_STYLE = {"completed": "green", "partial": "yellow", "failed": "bold red",
                "interrupted": "bold red"}


class JobProgress(Vertical):
    """One running job: what it is, a bar, bytes done of total, rate and ETA."""

    def __init__(self, job: ActiveJob) -> None:
        super().__init__(id=f"job-{job.job_id}", classes="job-progress")
        self.job = job

    def compose(self) -> ComposeResult:
        yield Label("", classes="job-title")
        yield ProgressBar(total=None, show_eta=False, show_percentage=True)
        yield Label("", classes="job-figures")

    def on_mount(self) -> None:
        self._show_job()

    def update_job(self, job: ActiveJob) -> None:
        self.job = job
        # A reload can come between mount() and compose (the screen loads twice as it
        # starts): then there is nothing to update yet, and on_mount shows the newest.
        if self.is_mounted:
            self._show_job()

    def _show_job(self) -> None:
        job = self.job
        what = f"{job.kind} {job.label or ''}".strip()
        phase = f" [{job.phase}]" if job.phase else ""
        self.query_one(".job-title", Label).update(f"{what} ({job.status}){phase}")
        bar = self.query_one(ProgressBar)
        if job.bytes_total:
            bar.update(total=job.bytes_total, progress=job.bytes_done or 0)
        figures = self.query_one(".job-figures", Label)
        if job.bytes_done is None:
            figures.update("waiting for a worker" if job.status != "running" else "starting")
        else:
            total = f" of {human_bytes(job.bytes_total)}" if job.bytes_total else ""
            figures.update(f"{human_bytes(job.bytes_done)}{total}  {rate(job.rate_bps)}"
                           f"  ETA {duration(job.eta_seconds)}")


class DashboardScreen(VaultScreen[Dashboard]):
    BINDINGS = [
        Binding("b", "backup_now", "Back up now"),
        Binding("v", "verify", "Verify"),
        Binding("r", "app.switch_mode('restore')", "Restore"),
    ]

    def compose(self) -> ComposeResult:
        yield NavBar("dashboard")
        with VerticalScroll(id="dashboard"):
            # first: what needs attention must not be below the fold of an 80x24 terminal
            yield Label("Alerts", classes="section", id="alerts-title")
            yield Static("", id="alerts", markup=False)
            yield Label("Sources", classes="section")
            table: DataTable[str] = DataTable(id="sources", cursor_type="row", zebra_stripes=True)
            yield table
            yield Label("Running jobs", classes="section")
            yield Static("", id="workers", markup=False)
            yield Vertical(id="jobs")
            yield Static("none", id="no-jobs", classes="dim")
            yield Label("Storage", classes="section")
            with Horizontal(id="storage-row"):
                yield ProgressBar(total=100, show_eta=False, id="storage-bar")
                yield Label("", id="storage-text")
            yield Label("Next runs", classes="section")
            yield Static("", id="next-runs", markup=False)
            # only with [[repositories]]: the newest snapshot of each source in each one
            title = Label("Repositories", classes="section", id="repositories-title")
            repositories = Static("", id="repositories", markup=False)
            title.display = repositories.display = False
            yield title
            yield repositories
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sources", DataTable)
        table.add_columns("source", "type", "status", "age", "size", "new")
        super().on_mount()

    def load(self) -> Dashboard:
        return dashboard(self.ctx, self.now())

    def show(self, data: Dashboard) -> None:
        now = self.now()
        report = data.status
        workers = self.query_one("#workers", Static)
        if data.queue_problem:
            workers.update(f"queue unreachable: {data.queue_problem}")
        else:
            workers.update("workers: " + worker_summary(report.workers, report.jobs))
        workers.set_class(bool(data.queue_problem) or not report.workers, "warn")
        self.sub_title = report.repository
        table: DataTable[str | Text] = self.query_one("#sources", DataTable)
        cursor = table.cursor_row
        table.clear()
        for state in report.sources:
            last = state.last
            shown = state.last_snapshot or last
            table.add_row(last.label, last.source_type,
                          Text(last.status, style=STATUS_STYLE.get(last.status, "")),
                          age(last.finished_at, now),
                          human_bytes(shown.bytes_raw) if shown.bytes_raw is not None else "-",
                          human_bytes(shown.bytes_new) if shown.bytes_new is not None else "-",
                          key=last.job_id)
        if report.sources:
            table.move_cursor(row=min(cursor, len(report.sources) - 1))
        self._show_jobs(report.jobs)
        self._show_storage(report)
        runs = [f"{run.name}: {run.at.astimezone():%Y-%m-%d %H:%M} (in {age(now, run.at)})"
                for run in report.next_runs]
        self.query_one("#next-runs", Static).update("\n".join(runs) or "no schedules")
        self._show_repositories(report)
        alerts = [f"! {alert.message}" for alert in report.alerts]
        widget = self.query_one("#alerts", Static)
        widget.update("\n".join(alerts))
        widget.set_class(bool(alerts), "bad")
        widget.display = bool(alerts)  # no section at all when nothing needs attention
        self.query_one("#alerts-title", Label).display = bool(alerts)

    def _show_jobs(self, jobs: list[ActiveJob]) -> None:
        box = self.query_one("#jobs", Vertical)
        shown = {child.job.job_id: child for child in box.query(JobProgress)}
        for job in jobs:
            if job.job_id in shown:
                shown.pop(job.job_id).update_job(job)
            else:
                box.mount(JobProgress(job))
        for gone in shown.values():
            gone.remove()
        self.query_one("#no-jobs", Static).display = not jobs

    def _show_storage(self, report: StatusReport) -> None:
        bar = self.query_one("#storage-bar", ProgressBar)
        text = self.query_one("#storage-text", Label)
        usage = report.usage
        if not report.initialised or usage is None:
            bar.display = False
            text.update(f"no repository at {report.repository} (vault init)")
            return
        percent = usage.percent
        bar.display = percent is not None
        if percent is not None and usage.quota:
            bar.update(total=100, progress=min(100.0, percent))
            text.update(f" {human_bytes(usage.used)} of {human_bytes(usage.quota)}"
                        f" ({percent:.0f}%)")
        else:
            text.update(f"{human_bytes(usage.used)} used, no quota;"
                        f" {report.snapshots} snapshot(s)")
        text.set_class(usage.low, "bad")

    def _show_repositories(self, report: StatusReport) -> None:
        """Each configured repository (`*`: the one in use) and the newest snapshot of
        each source in it, with its age (`vault status`, docs/offsite.md)."""
        now = self.now()
        lines = []
        for item in report.repositories:
            name = f"{item.name}{' *' if item.current else ''}"
            if item.error is not None or not item.newest:
                lines.append(f"{name}: {item.error or 'no snapshot recorded'}")
            lines += [f"{name}: {n.source} {n.snapshot_id[:8]} ({age(n.time, now)} ago)"
                      for n in item.newest]
        self.query_one("#repositories", Static).update("\n".join(lines))
        for widget in self.query("#repositories, #repositories-title"):
            widget.display = bool(lines)

    def action_backup_now(self) -> None:
        self.queue_job("back up", actions.backup_now)

    def action_verify(self) -> None:
        self.queue_job("verify", actions.verify_repository)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a source opens its last backup job."""
        if event.row_key.value:
            self.vault_app.open_job(event.row_key.value)
