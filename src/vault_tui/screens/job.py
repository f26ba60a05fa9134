"""One job's event stream, progress and errors (being built)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from vault_tui.screens.base import VaultScreen


class JobScreen(VaultScreen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"job {self.job_id}")
        yield Footer()

    def load(self) -> None:
        return None

    def show(self, data: None) -> None:
        pass
