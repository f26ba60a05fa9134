"""Settings: the repository, its storage and ratios, its keys (add one) and the
notification targets (send a test notice and see each target's result)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from vault.errors import VaultError
from vault.notify import Delivery
from vault_tui import settings_actions
from vault_tui.context import PassphraseNeeded
from vault_tui.data.settings import SettingsData, load_settings
from vault_tui.format import human_bytes
from vault_tui.navbar import NavBar
from vault_tui.screens.base import VaultScreen


class SettingsScreen(VaultScreen[SettingsData]):
    CSS_PATH = "settings.tcss"
    BINDINGS = [
        Binding("a", "add_key", "Add key"),
        Binding("t", "test_notice", "Test notifications"),
    ]

    def __init__(self) -> None:
        super().__init__()
        #: the last test notice's outcome per target name (kept across reloads)
        self.test_results: dict[str, str] = {}
        self.data: SettingsData | None = None

    def compose(self) -> ComposeResult:
        yield NavBar("settings")
        with VerticalScroll(id="settings-body"):
            yield Label("Repository", classes="section")
            yield Static("", id="repository", markup=False)
            yield Label("Storage", classes="section")
            yield Static("", id="storage", markup=False)
            yield Label("Keys", classes="section")
            keys: DataTable[str] = DataTable(id="keys", cursor_type="row")
            yield keys
            yield Label("Notifications", classes="section")
            targets: DataTable[str] = DataTable(id="targets", cursor_type="row")
            yield targets
            yield Static("", id="no-targets", classes="dim", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#keys", DataTable).add_columns("", "id", "created", "user@host",
                                                       "label")
        self.query_one("#targets", DataTable).add_columns("name", "channel", "test",
                                                          "where", "on")
        super().on_mount()

    def load(self) -> SettingsData:
        return load_settings(self.ctx)

    def show(self, data: SettingsData) -> None:
        self.data = data
        self.query_one("#repository", Static).update(repository_text(data))
        self.query_one("#storage", Static).update(storage_text(data))
        keys: DataTable[str] = self.query_one("#keys", DataTable)
        keys.clear()
        for key in data.keys:
            keys.add_row("*" if key.current else "", key.key_id[:12], key.created[:19],
                         f"{key.user}@{key.host}", key.label or "", key=key.key_id)
        self._show_targets()

    def _show_targets(self) -> None:
        targets: DataTable[str] = self.query_one("#targets", DataTable)
        targets.clear()
        shown = self.data.targets if self.data else []
        for target in shown:
            targets.add_row(target.name, target.channel,
                            self.test_results.get(target.name, "-"), target.where,
                            ", ".join(target.on), key=target.name)
        targets.display = bool(shown)
        none = self.query_one("#no-targets", Static)
        none.display = not shown
        none.update("none: add a [[notifications]] table to vault.toml")

    # --- actions --------------------------------------------------------------------------

    def action_add_key(self) -> None:
        def chosen(new: NewKey | None) -> None:
            if new is not None:
                self.act("add key", settings_actions.add_key, self._key_added,
                         new.passphrase, new.label)

        self.app.push_screen(NewKeyModal(), chosen)

    def _key_added(self, key_id: object) -> None:
        self.app.notify(f"added key {str(key_id)[:12]}", timeout=4)
        self.reload()

    def action_test_notice(self) -> None:
        if self.data is not None:
            for target in self.data.targets:
                self.test_results[target.name] = "sending..."
            self._show_targets()
        self.act("test notice", settings_actions.send_test_notice, self._tested)

    def _tested(self, deliveries: object) -> None:
        assert isinstance(deliveries, list)
        sent: dict[str, Delivery] = {d.name: d for d in deliveries}
        for target in self.data.targets if self.data else []:
            delivery = sent.get(target.name)
            self.test_results[target.name] = (
                settings_actions.delivery_text(delivery) if delivery is not None
                else f"not sent: `on` lacks {settings_actions.TEST_TRIGGER}")
        self._show_targets()
        failed = sum(1 for d in deliveries if not d.ok)
        self.app.notify(f"test notice: {len(deliveries) - failed} sent, {failed} failed",
                        severity="error" if failed else "information", timeout=6)

    def act(self, title: str, action: Callable[..., Any], then: Callable[[Any], None],
            *args: Any) -> None:
        """Run a settings_actions function in a thread, then `then(result)` on the UI
        thread; a core error goes to the error dialog."""
        self._act_in_thread(title, action, then, args)

    @work(thread=True, group="settings-action")
    def _act_in_thread(self, title: str, action: Callable[..., Any],
                       then: Callable[[Any], None], args: tuple[Any, ...]) -> None:
        try:
            result = action(self.ctx, *args)
        except PassphraseNeeded as needed:
            self.app.call_from_thread(self.vault_app.ask_passphrase, needed.wrong,
                                      lambda: self.act(title, action, then, *args))
            return
        except VaultError as exc:
            self.app.call_from_thread(self._failed, f"{title}: {exc.message}")
            return
        self.app.call_from_thread(then, result)

    def _failed(self, message: str) -> None:
        for name, text in list(self.test_results.items()):
            if text == "sending...":
                del self.test_results[name]
        self._show_targets()
        self.vault_app.show_error(message)


def repository_text(data: SettingsData) -> str:
    if not data.initialised:
        return f"no repository at {data.location} (vault init)"
    snapshots = data.stats.snapshots if data.stats else "-"
    return (f"location: {data.location}\n"
            f"id:       {data.repo_id}\n"
            f"format:   version {data.format_version}; {snapshots} snapshot(s)")


def storage_text(data: SettingsData) -> str:
    stats, usage = data.stats, data.usage
    if stats is None:
        return "-"
    lines = [
        f"stored:  {human_bytes(stats.stored_bytes)} in {stats.packs} packs",
        f"unique:  {human_bytes(stats.unique_bytes)} in {stats.blobs} blobs;"
        f" logical {human_bytes(stats.logical_bytes)} (all snapshots)",
        f"ratios:  dedup {stats.dedup_ratio:.2f}x, compression {stats.compression_ratio:.2f}x,"
        f" saving {stats.saving_percent:.1f}%",
    ]
    if usage is not None and usage.quota:
        low = "  LOW" if usage.low else ""
        lines.append(f"quota:   {human_bytes(usage.used)} of {human_bytes(usage.quota)}"
                     f" ({usage.percent or 0:.0f}%, warn at {usage.warn_percent:.0f}%){low}")
    elif usage is not None:
        lines.append(f"quota:   none ({human_bytes(usage.used)} on storage)")
    return "\n".join(lines)


@dataclass(frozen=True)
class NewKey:
    passphrase: str
    label: str | None


class NewKeyModal(ModalScreen[NewKey | None]):
    """A new passphrase, typed twice (masked), and an optional label."""

    CSS_PATH = "settings.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self) -> None:
        super().__init__(classes="vault-modal")

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Add a key", classes="title")
            yield Static("A new passphrase that also unlocks the repository.", classes="dim")
            yield Input(password=True, id="new-passphrase", placeholder="new passphrase")
            yield Input(password=True, id="repeat-passphrase", placeholder="again")
            yield Input(id="key-label", placeholder="label (optional)")
            yield Static("", id="key-error", classes="bad", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Add", id="add", variant="primary")
                yield Button("Cancel", id="cancel")

    def action_add(self) -> None:
        new = self.query_one("#new-passphrase", Input).value
        again = self.query_one("#repeat-passphrase", Input).value
        error = self.query_one("#key-error", Static)
        if not new:
            error.update("type the new passphrase")
        elif new != again:
            error.update("the two passphrases differ")
        else:
            label = self.query_one("#key-label", Input).value.strip() or None
            self.dismiss(NewKey(new, label))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "new-passphrase":
            self.query_one("#repeat-passphrase", Input).focus()
        elif event.input.id == "repeat-passphrase":
            self.query_one("#key-label", Input).focus()
        else:
            self.action_add()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self.action_add()
        else:
            self.dismiss(None)
