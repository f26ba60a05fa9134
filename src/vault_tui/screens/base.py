"""What every screen of the TUI shares: it shows a projection of the journal, reloads it
in a worker thread when the journal moves, and reports errors without crashing."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from textual import work
from textual.screen import Screen
from textual.worker import get_current_worker

from vault.errors import VaultError
from vault_tui.context import PassphraseNeeded, TuiContext

if TYPE_CHECKING:
    from vault_tui.app import VaultApp

Data = TypeVar("Data")


class VaultScreen(Screen[None], Generic[Data]):
    """A screen whose content comes from `load()` (run in a thread: it may read the
    journal and the repository) and is shown by `show()` (on the UI thread). It reloads
    when it mounts, when it comes back to the front, and when the journal's head moves
    while it is in front."""

    @property
    def vault_app(self) -> VaultApp:
        from vault_tui.app import VaultApp

        assert isinstance(self.app, VaultApp)
        return self.app

    @property
    def ctx(self) -> TuiContext:
        return self.vault_app.ctx

    def now(self) -> datetime:
        return self.vault_app.clock()

    def on_mount(self) -> None:
        self.watch(self.vault_app, "head_seq", self._journal_moved, init=False)
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def _journal_moved(self, _head: int) -> None:
        if self.is_current:
            self.reload()

    def reload(self) -> None:
        self._load_in_thread()

    @work(thread=True, exclusive=True, group="screen-load")
    def _load_in_thread(self) -> None:
        try:
            data = self.load()
        except PassphraseNeeded as needed:
            self.app.call_from_thread(self.vault_app.ask_passphrase, needed.wrong, self.reload)
            return
        except VaultError as exc:
            self.app.call_from_thread(self.vault_app.show_error, exc.message, True)
            return
        except Exception as exc:  # a bug must not take the operator's terminal away
            self.app.call_from_thread(self.vault_app.show_error,
                                      f"internal error: {type(exc).__name__}: {exc}", True)
            return
        # A newer reload cancels this one (exclusive); its older data must not land
        # after the newer data.
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, data)

    def _show(self, data: Data) -> None:
        self.vault_app.clear_load_error()
        self.show(data)

    def load(self) -> Data:
        """Read what the screen shows. Runs in a worker thread."""
        raise NotImplementedError

    def show(self, data: Data) -> None:
        """Put `data` on the screen. Runs on the UI thread."""
        raise NotImplementedError

    def queue_job(self, title: str, action: Any, *args: Any) -> None:
        """Run `action(ctx, *args)` (a vault_tui.actions function: it queues a job) in a
        thread; tell the operator what was queued, or why not."""
        self._act(title, action, args)

    @work(thread=True, group="screen-action")
    def _act(self, title: str, action: Any, args: tuple[Any, ...]) -> None:
        try:
            result = action(self.ctx, *args)
        except PassphraseNeeded as needed:
            self.app.call_from_thread(self.vault_app.ask_passphrase, needed.wrong,
                                      lambda: self.queue_job(title, action, *args))
            return
        except (VaultError, ValueError) as exc:
            message = exc.message if isinstance(exc, VaultError) else str(exc)
            self.app.call_from_thread(self.vault_app.show_error, f"{title}: {message}")
            return
        jobs = result if isinstance(result, list) else [result]
        ids = ", ".join(getattr(job, "job_id", str(job)) for job in jobs)
        self.app.call_from_thread(self.app.notify, f"{title}: queued {ids}", timeout=4)
