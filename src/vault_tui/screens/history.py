"""History of snapshots (being built)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Header, Static

from vault_tui.screens.base import VaultScreen


class HistoryScreen(VaultScreen[None]):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("History of snapshots")
        yield Footer()

    def load(self) -> None:
        return None

    def show(self, data: None) -> None:
        pass
