"""Widgets of the restore browser: the snapshot tree (space marks a subtree), the
options, the preview of the plan, and the panel following the queued restore to its
report."""

from __future__ import annotations

from collections.abc import Iterator

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import (
    Checkbox,
    DataTable,
    Input,
    Label,
    ProgressBar,
    Select,
    Static,
    Tree,
)
from textual.widgets.tree import TreeNode

from vault.operations.restore_checks import plan_changes
from vault.planning.restore_plan import MODES, ON_CONFLICT, default_on_conflict
from vault.restore.report import COUNTS
from vault_tui.data.restore_plan import (
    PLAN_COLUMNS,
    PlanSummary,
    RestoreOptions,
    Selection,
    plan_rows,
    report_rows,
)
from vault_tui.data.restore_tree import TreeEntry
from vault_tui.format import duration, human_bytes, rate
from vault_tui.restore_jobs import Preview, RestoreJobState

#: what a marked node's label starts with (a character, so NO_COLOR still shows it)
MARKED = "✔ "


class RestoreTree(Tree[TreeEntry]):
    """The snapshot's tree. Enter expands a node (its children are read then), space
    marks or unmarks it for the restore."""

    BINDINGS = [Binding("space", "screen.mark", "Mark")]

    def __init__(self) -> None:
        super().__init__("no snapshot", id="tree")
        self.loaded: set[int] = set()  # ids of the nodes whose children were read

    def nodes(self) -> Iterator[TreeNode[TreeEntry]]:
        pending = [self.root]
        while pending:
            node = pending.pop()
            yield node
            pending.extend(node.children)

    def add_entries(self, node: TreeNode[TreeEntry], entries: list[TreeEntry],
                    selection: Selection) -> None:
        self.loaded.add(node.id)
        node.remove_children()
        for entry in entries:
            child = node.add(label_of(entry, selection), entry, allow_expand=entry.expandable)
            if entry.children is not None:
                self.add_entries(child, list(entry.children), selection)
        if not entries:
            node.add_leaf(Text("(empty)", style="dim"))

    def show_marks(self, selection: Selection) -> None:
        for node in self.nodes():
            if node.data is not None:
                node.set_label(label_of(node.data, selection))


def label_of(entry: TreeEntry, selection: Selection) -> Text:
    if entry.mark is not None and entry.mark in selection.marks:
        return Text(MARKED + entry.label, style="bold")
    return Text(entry.label, style="dim" if entry.kind == "note" else "")


class OptionsPanel(Vertical):
    """Mode, conflict policy and target; for a database, a copy with new ids and what
    the copy renames (`--new-ids`, `--rename`). Picking a mode resets the conflict policy
    to that mode's default, as `vault restore --mode M` without --on-conflict does."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="option-row"):
            yield Label("mode", classes="option-label")
            yield Select[str]([(m, m) for m in MODES], id="mode", allow_blank=False,
                              value="merge", compact=True)
        with Horizontal(classes="option-row"):
            yield Label("on conflict", classes="option-label")
            yield Select[str]([(c, c) for c in ON_CONFLICT], id="on-conflict",
                              allow_blank=False, value="skip", compact=True)
        yield Label("target", classes="option-label")
        yield Input(id="target", compact=True)
        yield Static("", id="target-hint", classes="dim", markup=False)
        with Vertical(id="copy-options"):
            yield Checkbox("copy with new ids (n)", id="new-ids", compact=True)
            yield Label("rename", classes="option-label")
            yield Input(id="rename", compact=True, placeholder="FIELD=VALUE, e.g. name=Copy")

    def options(self) -> RestoreOptions:
        return RestoreOptions(str(self.query_one("#mode", Select).value),
                              str(self.query_one("#on-conflict", Select).value),
                              self.query_one("#target", Input).value,
                              new_ids=self.query_one("#new-ids", Checkbox).value,
                              rename=self.query_one("#rename", Input).value)

    def reset(self, options: RestoreOptions, database: bool) -> None:
        self.query_one("#mode", Select).value = options.mode
        self.query_one("#on-conflict", Select).value = options.on_conflict
        self.query_one("#target", Input).value = options.target
        self.query_one("#new-ids", Checkbox).value = options.new_ids
        self.query_one("#rename", Input).value = options.rename
        self.query_one("#copy-options").display = database  # files have no ids

    def toggle_new_ids(self) -> None:
        box = self.query_one("#new-ids", Checkbox)
        if self.query_one("#copy-options").display:
            box.value = not box.value

    def hint(self, text: str) -> None:
        self.query_one("#target-hint", Static).update(text)

    def cycle(self, name: str) -> None:
        select: Select[str] = self.query_one(f"#{name}", Select)
        values: list[str] = list(MODES if name == "mode" else ON_CONFLICT)
        select.value = values[(values.index(str(select.value)) + 1) % len(values)]

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "mode" and event.value in MODES:
            self.query_one("#on-conflict", Select).value = \
                default_on_conflict(str(event.value))  # type: ignore[arg-type]


class PreviewPanel(Vertical):
    """The plan of a dry run: a line of figures, then per directory / table / collection
    how many items each action takes."""

    def compose(self) -> ComposeResult:
        yield Static("not yet: press p", id="preview-summary", markup=False)
        table: DataTable[str] = DataTable(id="preview", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        self.query_one("#preview", DataTable).add_columns("group", *PLAN_COLUMNS)
        self.query_one("#preview").display = False

    def say(self, text: str) -> None:
        self.query_one("#preview-summary", Static).update(text)

    def show_preview(self, preview: Preview) -> None:
        plan, summary = preview.plan, PlanSummary.of(preview.plan)
        table: DataTable[str] = self.query_one("#preview", DataTable)
        table.clear()
        for row in plan_rows(plan):
            table.add_row(*row)
        table.display = bool(plan)
        text = (f"mode {plan.get('mode')}, on conflict {plan.get('on_conflict')}: "
                f"{human_bytes(summary.bytes_to_write)} to write" if plan
                else "this restore has no item plan")
        if summary.destructive:
            text += f"; changes what is there ({plan_changes(plan)})"
        if summary.conflicts:
            text += f"; {summary.conflicts} conflict(s): it would be refused"
        text += "".join(f"\nwarning: {w}" for w in preview.warnings)
        self.say(text)
        self.query_one("#preview-summary").set_class(
            summary.destructive or bool(summary.conflicts), "warn")


class JobPanel(Vertical):
    """The restore queued from the browser: its status and progress while it runs, then
    its report (per group restored/skipped/deleted/failed/conflicts), its warnings and
    whether it can be undone; then its undo's outcome."""

    #: (job id, finished, undo job id, its finished) as last shown
    shown: tuple[object, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static("no restore queued from here yet", id="job-status", markup=False)
        yield ProgressBar(total=None, show_eta=False, id="job-progress")
        table: DataTable[str] = DataTable(id="report", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="report-text", markup=False)
        yield Static("", id="undo-status", markup=False)

    def on_mount(self) -> None:
        self.query_one("#report", DataTable).add_columns("group", *COUNTS)
        self.query_one("#job-progress").display = False
        self.query_one("#report").display = False

    def show_job(self, job: RestoreJobState | None, undo: RestoreJobState | None) -> None:
        status = self.query_one("#job-status", Static)
        self.shown = (job and job.job_id, job and job.finished, undo and undo.job_id,
                      undo and undo.finished)
        if job is None:
            status.update("no restore queued from here yet")
            return
        status.update(_status_line(job))
        status.set_class(job.status == "failed", "bad")
        bar = self.query_one("#job-progress", ProgressBar)
        bytes_done, bytes_total = job.row.get("bytes_done"), job.row.get("bytes_total")
        bar.display = not job.finished
        if bytes_total:
            bar.update(total=bytes_total, progress=bytes_done or 0)
        self._show_report(job)
        self.query_one("#undo-status", Static).update(_undo_line(job, undo))

    def _show_report(self, job: RestoreJobState) -> None:
        table: DataTable[str] = self.query_one("#report", DataTable)
        text = self.query_one("#report-text", Static)
        table.display = job.report is not None
        lines: list[str] = []
        if job.report is not None:
            table.clear()
            for row in report_rows(job.report):
                table.add_row(*row)
            lines.append(f"{human_bytes(job.report.bytes_written)} written in "
                         f"{duration(job.report.duration_seconds)} (mode {job.report.mode},"
                         f" on conflict {job.report.on_conflict})")
            if job.report.id_map:  # a new copy: how many records got new ids
                lines.append("new ids: " + ", ".join(
                    f"{group} {len(ids)}" for group, ids in job.report.id_map.items()))
            lines += [f"warning: {w}" for w in job.report.warnings]
        elif job.completed is not None:  # an undo journals its totals only
            done = job.completed
            lines.append(f"{done.files_restored} item(s) restored, "
                         f"{human_bytes(done.bytes_written)} in "
                         f"{duration(done.duration_seconds)} into {done.target}")
        if job.completed is not None and job.completed.errors:
            lines += [f"failed: {e.path}: {e.error}" for e in job.completed.errors]
        if job.error:
            lines.append(f"error: {job.error}")
        text.update("\n".join(lines))


def _status_line(job: RestoreJobState) -> str:
    row = job.row
    line = f"job {job.job_id}: {job.status}"
    if row.get("phase") and not job.finished:
        line += f" [{row['phase']}]"
    if job.status in ("requested", "queued"):
        return line + "; waiting for a worker"
    if not job.finished and row.get("bytes_done") is not None:
        total = f" of {human_bytes(row['bytes_total'])}" if row.get("bytes_total") else ""
        line += (f"; {human_bytes(row['bytes_done'])}{total} {rate(row.get('rate_bps'))}"
                 f" ETA {duration(row.get('eta_seconds'))}")
    return line


def _undo_line(job: RestoreJobState, undo: RestoreJobState | None) -> str:
    if job.undone is not None:
        return (f"undone: {job.undone.restored} item(s) put back, {job.undone.removed} "
                "created item(s) removed")
    if undo is not None:
        return f"undo job {undo.job_id}: {undo.status}" + (
            f": {undo.error}" if undo.error else "")
    if job.can_undo:
        return f"a safety copy was kept: u undoes it (vault restore undo {job.job_id})"
    if job.undoable is not None and job.finished and not job.safety_copy_kept:
        return "the safety copy was forgotten: it can no longer be undone"
    return ""
