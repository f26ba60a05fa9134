"""The restore browser: pick a snapshot, browse it as a tree (read lazily, a level at a
time), mark what to restore, set mode, conflict policy and target, preview the plan
(`vault restore --dry-run`), then queue the restore for the worker -- a destructive one
only once the operator typed the target's name -- and follow it to its report and undo."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Checkbox, Footer, Input, Label, Select, Static, Tree
from textual.widgets.tree import TreeNode

from vault.errors import VaultError
from vault.foundation.paths import ensure_private_dir
from vault.jobs.commands import RestoreArgs
from vault.operations.restore_checks import plan_changes
from vault_tui import restore_jobs
from vault_tui.context import PassphraseNeeded
from vault_tui.data.restore_plan import (
    PlanSummary,
    Selection,
    SnapshotChoice,
    confirmation_name,
    default_options,
    restore_args,
)
from vault_tui.data.restore_tree import SnapshotBrowser, TreeEntry
from vault_tui.format import human_bytes
from vault_tui.navbar import NavBar
from vault_tui.restore_jobs import Preview, ScreenData
from vault_tui.screens.base import VaultScreen
from vault_tui.screens.history import HistoryScreen
from vault_tui.screens.modals import ConfirmModal, TypedConfirmModal
from vault_tui.widgets_restore import JobPanel, OptionsPanel, PreviewPanel, RestoreTree


def _picker_label(choice: SnapshotChoice) -> str:
    when = datetime.fromisoformat(choice.time).astimezone()
    return (f"{choice.short_id}  {when:%Y-%m-%d %H:%M}  {choice.name} ({choice.source_type})"
            f"  {human_bytes(choice.bytes_raw)}")


class RestoreScreen(VaultScreen[ScreenData]):
    CSS_PATH = "restore.tcss"
    AUTO_FOCUS = "#tree"
    BINDINGS = [
        Binding("space", "mark", "Mark or unmark the node under the cursor", show=False),
        Binding("p", "preview", "Preview"),
        Binding("g", "go", "Restore"),
        Binding("u", "undo", "Undo"),
        Binding("s", "pick_snapshot", "Pick a snapshot", show=False),
        Binding("x", "clear_marks", "Clear the marks", show=False),
        Binding("m", "cycle('mode')", "Next restore mode", show=False),
        Binding("o", "cycle('on-conflict')", "Next conflict policy", show=False),
        Binding("t", "focus_target", "Edit the target", show=False),
        Binding("n", "toggle_new_ids", "Copy the marked records with new ids", show=False),
        Binding("j", "open_job", "Open the restore job", show=False),
        Binding("escape", "focus_tree", "Back to the tree", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.choices: list[SnapshotChoice] = []
        self.choice: SnapshotChoice | None = None
        self.browser: SnapshotBrowser | None = None
        self.selection = Selection()
        self.preview_shown: Preview | None = None
        self.job_id: str | None = None
        self.undo_id: str | None = None
        self.data: ScreenData | None = None
        self.wanted: str | None = None  # a snapshot chosen on the history screen (`r`)

    def compose(self) -> ComposeResult:
        yield NavBar("restore")
        with Horizontal(id="picker-row"):
            yield Label("snapshot ", classes="dim")
            yield Select[str]([], id="snapshot", prompt="no snapshots yet", compact=True)
        with Horizontal(id="restore-body"):
            yield RestoreTree()
            with VerticalScroll(id="side"):
                yield Label("Selected", classes="section")
                yield Static("the whole snapshot", id="selection", markup=False)
                yield Label("Options", classes="section")
                yield OptionsPanel(id="options")
                yield Label("Preview (p)", classes="section")
                yield PreviewPanel(id="plan")
                yield Label("Restore (g)", id="restore-section", classes="section")
                yield JobPanel(id="job")
        yield Footer()

    def on_unmount(self) -> None:
        if self.browser is not None:
            self.browser.close()

    # --- the projection: snapshots on offer, the job followed -------------------------------

    def load(self) -> ScreenData:
        return restore_jobs.screen_data(self.ctx, self.job_id, self.undo_id)

    def show(self, data: ScreenData) -> None:
        self.data = data
        if [c.snapshot_id for c in data.snapshots] != [c.snapshot_id for c in self.choices]:
            self.choices = data.snapshots
            picker: Select[str] = self.query_one("#snapshot", Select)
            picker.set_options([(_picker_label(c), c.snapshot_id) for c in self.choices])
            keep = self.wanted or (self.choice.snapshot_id if self.choice else None)
            if keep is None and self.choices:
                keep = self.choices[0].snapshot_id  # the newest
            if keep in {c.snapshot_id for c in self.choices}:
                picker.value = keep
                self.wanted = None
        panel = self.query_one(JobPanel)
        before = panel.shown
        panel.show_job(data.job, data.undo)
        if panel.shown != before:  # a job appeared or finished: bring it into view
            self.call_after_refresh(self.query_one("#side").scroll_to_widget,
                                    self.query_one("#restore-section"), top=True)

    def on_history_screen_snapshot_chosen(self, message: HistoryScreen.SnapshotChosen) -> None:
        """`r` on the history screen: open that snapshot, now if the picker offers it,
        else once the snapshots are loaded."""
        if message.snapshot_id in {c.snapshot_id for c in self.choices}:
            self.query_one("#snapshot", Select).value = message.snapshot_id
        else:
            self.wanted = message.snapshot_id

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "snapshot":
            value = event.value
            if isinstance(value, str) and (self.choice is None
                                           or value != self.choice.snapshot_id):
                self._open(next(c for c in self.choices if c.snapshot_id == value))
        else:
            self._options_changed()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("target", "rename"):
            self._options_changed()

    def on_checkbox_changed(self, _event: Checkbox.Changed) -> None:
        self._options_changed()

    # --- the tree ------------------------------------------------------------------------------

    def _open(self, choice: SnapshotChoice) -> None:
        """Show `choice`: a fresh tree, no marks, the options that change nothing."""
        self.choice = choice
        self.selection = Selection()
        if self.browser is not None:
            self.browser.close()
            self.browser = None
        self.query_one(OptionsPanel).reset(default_options(choice, os.getcwd()),
                                           database=not choice.is_files)
        tree = self.query_one(RestoreTree)
        tree.clear()
        tree.loaded.clear()
        title = f"snapshot {choice.short_id} of {choice.name} ({choice.source_type})"
        tree.root.set_label(title)
        tree.root.data = TreeEntry(title, "group")
        tree.root.add_leaf("reading the snapshot...")
        tree.root.expand()
        tree.focus()
        self._show_selection()
        self._open_in_thread(choice)

    @work(thread=True, exclusive=True, group="restore-open")
    def _open_in_thread(self, choice: SnapshotChoice) -> None:
        def read() -> tuple[SnapshotBrowser, list[TreeEntry]]:
            repo = self.ctx.repository()
            scratch = ensure_private_dir(self.ctx.config().resolved_cache_dir()) / "scratch"
            browser = SnapshotBrowser(repo, repo.find_snapshot(choice.snapshot_id), scratch)
            return browser, browser.root_entries()

        self._in_thread(read, lambda found: self._opened(choice, *found),
                        retry=lambda: self._open_in_thread(choice))

    def _opened(self, choice: SnapshotChoice, browser: SnapshotBrowser,
                entries: list[TreeEntry]) -> None:
        if choice != self.choice:
            browser.close()  # another snapshot was picked meanwhile
            return
        self.browser = browser
        self.query_one(OptionsPanel).hint(
            "a file, database or URL; empty: the database's own location"
            if not choice.is_files else f"a directory; {browser.base} puts the files back "
            "where they were" + (f" (what is under {browser.base} goes into the target)"
                                 if browser.base != "/" else ""))
        tree = self.query_one(RestoreTree)
        tree.add_entries(tree.root, entries, self.selection)
        if len(entries) == 1 and entries[0].expandable:
            tree.root.children[0].expand()  # one backed-up path: open it at once

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[TreeEntry]) -> None:
        node, tree = event.node, self.query_one(RestoreTree)
        entry = node.data
        if entry is None or node.id in tree.loaded or node is tree.root:
            return
        if entry.children is None and self.browser is not None:
            tree.loaded.add(node.id)
            node.add_leaf("reading...")
            self._children_in_thread(self.browser, node)

    @work(thread=True, group="restore-tree")
    def _children_in_thread(self, browser: SnapshotBrowser, node: TreeNode[TreeEntry]) -> None:
        entry = node.data
        assert entry is not None
        if not self._in_thread(lambda: browser.children(entry),
                               lambda entries: self._show_children(browser, node, entries),
                               retry=lambda: self._children_in_thread(browser, node)):
            self.app.call_from_thread(self._unread, node)

    def _unread(self, node: TreeNode[TreeEntry]) -> None:
        """Reading failed: collapse the node, so that expanding it again tries again."""
        self.query_one(RestoreTree).loaded.discard(node.id)
        node.remove_children()
        node.collapse()

    def _show_children(self, browser: SnapshotBrowser, node: TreeNode[TreeEntry],
                      entries: list[TreeEntry]) -> None:
        if browser is self.browser:
            self.query_one(RestoreTree).add_entries(node, entries, self.selection)

    # --- marks and options --------------------------------------------------------------------

    def action_mark(self) -> None:
        tree = self.query_one(RestoreTree)
        node = tree.cursor_node
        if node is None or node.data is None:
            return
        if node is tree.root:
            self.action_clear_marks()
            return
        if node.data.mark is None:
            self.notify("this cannot be restored on its own", timeout=3)
            return
        self.selection, note = self.selection.toggle(node.data.mark)
        if note:
            self.notify(note, timeout=4)
        tree.show_marks(self.selection)
        self._show_selection()

    def action_clear_marks(self) -> None:
        self.selection = Selection()
        self.query_one(RestoreTree).show_marks(self.selection)
        self._show_selection()

    def _show_selection(self) -> None:
        lines = self.selection.describe()
        self.query_one("#selection", Static).update(
            "\n".join(lines) if lines else "the whole snapshot (space marks a node)")
        self._options_changed()

    def _options_changed(self) -> None:
        if self.preview_shown is not None:
            self.preview_shown = None
            self.query_one(PreviewPanel).say(
                "out of date: press p for the plan of what is marked now")

    def action_cycle(self, name: str) -> None:
        self.query_one(OptionsPanel).cycle(name)

    def action_focus_tree(self) -> None:
        self.query_one(RestoreTree).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("target", "rename"):
            self.action_focus_tree()

    def action_toggle_new_ids(self) -> None:
        self.query_one(OptionsPanel).toggle_new_ids()

    def action_focus_target(self) -> None:
        self.query_one("#target", Input).focus()

    def action_pick_snapshot(self) -> None:
        self.query_one("#snapshot", Select).focus()

    # --- preview, go, undo ---------------------------------------------------------------------

    def _args(self) -> RestoreArgs | None:
        if self.choice is None or self.browser is None:
            self.notify("no snapshot to restore from yet" if self.choice is None else
                        "still reading the snapshot", timeout=3)
            return None
        try:
            return restore_args(self.choice, self.selection,
                                self.query_one(OptionsPanel).options(),
                                self.browser.base)
        except VaultError as exc:
            self.vault_app.show_error(exc.message)
            return None

    def action_preview(self) -> None:
        args = self._args()
        if args is not None:
            self.query_one(PreviewPanel).say("planning...")
            self._plan_in_thread(args, self._show_preview)

    def action_go(self) -> None:
        args = self._args()
        if args is not None:
            self.query_one(PreviewPanel).say("planning...")
            self._plan_in_thread(args, self._confirm)  # planned again: the target may move

    @work(thread=True, exclusive=True, group="restore-plan")
    def _plan_in_thread(self, args: RestoreArgs, then: Callable[[Preview], None]) -> None:
        if not self._in_thread(lambda: restore_jobs.preview(self.ctx, args), then,
                               retry=lambda: self._plan_in_thread(args, then)):
            self.app.call_from_thread(self.query_one(PreviewPanel).say,
                                      "no plan: press p to try again")

    def _show_preview(self, preview: Preview) -> None:
        self.preview_shown = preview
        panel = self.query_one(PreviewPanel)
        panel.show_preview(preview)
        self.query_one("#side").scroll_to_widget(panel)

    def _confirm(self, preview: Preview) -> None:
        self._show_preview(preview)
        summary, choice = PlanSummary.of(preview.plan), self.choice
        if choice is None:
            return
        if summary.conflicts:
            self.vault_app.show_error(f"the plan has {summary.conflicts} conflict(s) and "
                                      "on conflict is fail: the restore would be refused; "
                                      "nothing was queued")
            return
        target = preview.args.target or "its own location"
        what = f"Restore snapshot {choice.short_id} of {choice.name} into {target}"
        destructive = summary.destructive

        def answered(ok: bool | None) -> None:
            if ok:
                self._queue(preview.args, destructive)

        if destructive:
            self.app.push_screen(
                TypedConfirmModal(f"{what}: it changes what is there "
                                  f"({plan_changes(preview.plan)}).",
                                  confirmation_name(choice, preview.args)), answered)
        else:
            self.app.push_screen(ConfirmModal(f"{what}? It changes nothing that exists; "
                                              "the worker carries it out."), answered)

    @work(thread=True, group="restore-queue")
    def _queue(self, args: RestoreArgs, yes: bool) -> None:
        self._in_thread(lambda: restore_jobs.queue_restore(self.ctx, args, yes),
                        lambda job: self._following(job.job_id, None),
                        retry=lambda: self._queue(args, yes))

    def _following(self, job_id: str, undo_id: str | None) -> None:
        # No toast: the job panel says it is queued. (A toast raised while the confirming
        # modal is still being dismissed lands on the modal and can stay painted.)
        self.job_id, self.undo_id = job_id, undo_id
        self.reload()

    def action_undo(self) -> None:
        job = self.data.job if self.data else None
        if job is None or not job.can_undo:
            self.notify("nothing to undo: no finished restore from here kept a safety copy",
                        timeout=4)
            return
        job_id = job.job_id

        def answered(ok: bool | None) -> None:
            if ok:
                self._queue_undo(job_id)

        self.app.push_screen(
            ConfirmModal(f"Undo restore {job_id}: put its target back as it was before?"),
            answered)

    @work(thread=True, group="restore-queue")
    def _queue_undo(self, job_id: str) -> None:
        self._in_thread(lambda: restore_jobs.queue_undo(self.ctx, job_id),
                        lambda undo: self._following(job_id, undo.job_id),
                        retry=lambda: self._queue_undo(job_id))

    def action_open_job(self) -> None:
        if self.job_id:
            self.vault_app.open_job(self.undo_id or self.job_id)

    # --- running vault in a thread ---------------------------------------------------------------

    def _in_thread(self, read: Callable[[], Any], then: Callable[[Any], None],
                   retry: Callable[[], object]) -> bool:
        """Call `read()` (in this worker thread), then `then(result)` on the UI thread; a
        missing passphrase is asked for (then `retry()`), an error shown in the modal.
        Whether `read()` succeeded."""
        try:
            result = read()
        except PassphraseNeeded as needed:
            self.app.call_from_thread(self.vault_app.ask_passphrase, needed.wrong, retry)
            return False
        except VaultError as exc:
            self.app.call_from_thread(self.vault_app.show_error, exc.message)
            return False
        except Exception as exc:  # a bug must not take the operator's terminal away
            self.app.call_from_thread(self.vault_app.show_error,
                                      f"internal error: {type(exc).__name__}: {exc}")
            return False
        self.app.call_from_thread(then, result)
        return True


__all__ = ["RestoreScreen"]
