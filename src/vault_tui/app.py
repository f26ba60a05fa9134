"""`vault tui`: the Textual app. It projects the journal into live screens and sends
commands to the worker; it never runs a backup or a restore in its own process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from vault_tui.context import TuiContext
from vault_tui.follower import POLL_SECONDS, JournalChanged, JournalFollower
from vault_tui.navbar import TABS
from vault_tui.screens.dashboard import DashboardScreen
from vault_tui.screens.history import HistoryScreen
from vault_tui.screens.journal import JournalScreen
from vault_tui.screens.modals import ErrorModal, PassphraseModal
from vault_tui.screens.restore import RestoreScreen
from vault_tui.screens.schedules import SchedulesScreen
from vault_tui.screens.settings import SettingsScreen

#: the top-level screens, in the order of their number keys
_SCREEN_CLASSES: dict[str, type[Screen[None]]] = {
    "dashboard": DashboardScreen,
    "history": HistoryScreen,
    "restore": RestoreScreen,
    "schedules": SchedulesScreen,
    "journal": JournalScreen,
    "settings": SettingsScreen,
}
SCREENS: dict[str, tuple[str, type[Screen[None]]]] = {
    mode: (title, _SCREEN_CLASSES[mode]) for mode, title in TABS}


class VaultApp(App[None]):
    CSS_PATH = "vault.tcss"
    TITLE = "vault"
    MODES = {name: screen for name, (_, screen) in SCREENS.items()}
    DEFAULT_MODE = "dashboard"
    BINDINGS = [
        # the nav bar on top of every screen shows these: the footer keeps its room for the
        # screen's own keys
        *(Binding(str(number), f"switch_mode('{name}')", title, show=False)
          for number, (name, (title, _)) in enumerate(SCREENS.items(), start=1)),
        Binding("q", "quit", "Quit"),
    ]

    #: the journal's newest seq as last seen by the follower (-1: no journal yet)
    head_seq: reactive[int] = reactive(-1)

    def __init__(self, ctx: TuiContext, *, follow: bool = True,
                 poll_seconds: float = POLL_SECONDS,
                 clock: Callable[[], datetime] | None = None) -> None:
        # NO_COLOR: Textual's own answer is greyscale; native ANSI colours make it drop
        # colours altogether (default colours, bold and reverse only).
        super().__init__(ansi_color=True if os.environ.get("NO_COLOR") else None)
        self.ctx = ctx
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._follow = follow
        self._poll_seconds = poll_seconds
        self._follower: JournalFollower | None = None
        self._load_error: str | None = None
        self._asking_passphrase = False

    def on_mount(self) -> None:
        if self.ansi_color:
            self.add_class("-no-color")
        if self._follow:
            journal = self.ctx.config().journal_path()
            self._follower = JournalFollower(journal, self.post_message, self._poll_seconds)
            self._follower.start()

    def on_unmount(self) -> None:
        if self._follower is not None:
            self._follower.stop()

    def on_journal_changed(self, message: JournalChanged) -> None:
        self.head_seq = message.head_seq

    # --- errors and the passphrase ------------------------------------------------------

    def show_error(self, message: str, from_load: bool = False) -> None:
        """A core error's one-line message in a modal. A screen's reload failing the same
        way again (it reloads on every journal change) is not shown twice."""
        if from_load:
            if message == self._load_error:
                return
            self._load_error = message
        top = self.screen
        if isinstance(top, ErrorModal) and top.message == message:
            return
        self.push_screen(ErrorModal(message))

    def clear_load_error(self) -> None:
        self._load_error = None

    def ask_passphrase(self, wrong: bool, then: Callable[[], object]) -> None:
        """Ask for the repository passphrase, then run `then` (the load or action that
        needed it). Only one prompt at a time: other screens asking wait for it."""
        if self._asking_passphrase:
            return
        self._asking_passphrase = True

        def answered(passphrase: str | None) -> None:
            self._asking_passphrase = False
            if passphrase:
                self.ctx.set_passphrase(passphrase)
                then()

        self.push_screen(PassphraseModal(wrong), answered)

    # --- navigation -----------------------------------------------------------------------

    def open_job(self, job_id: str) -> None:
        from vault_tui.screens.job import JobScreen

        self.push_screen(JobScreen(job_id))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every action in the command palette: the screens, then the current screen's
        own actions (its bindings), then Textual's (theme, quit, ...)."""
        for name, (title, _) in SCREENS.items():
            yield SystemCommand(f"Go to {title}", f"Show the {title.lower()} screen",
                                partial(self.switch_mode, name))
        seen = set()
        for binding in [*screen.BINDINGS]:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            if binding.action in seen:
                continue
            seen.add(binding.action)
            yield SystemCommand(binding.description, f"{binding.description} ({binding.key})",
                                partial(self.run_action, binding.action, screen))
        yield from super().get_system_commands(screen)
