"""Modal dialogs: an error's one-line message, the passphrase prompt, a yes/no question and
the typed confirmation destructive actions need."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ErrorModal(ModalScreen[None]):
    """A core error's one-line message; Enter or Escape closes it."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, message: str) -> None:
        super().__init__(classes="vault-modal")
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="error"):
            yield Label("Error", classes="title")
            yield Static(self.message, id="error-message", markup=False)
            yield Button("Close", id="close", variant="error")

    def on_button_pressed(self) -> None:
        self.dismiss()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss()


class PassphraseModal(ModalScreen[str | None]):
    """Asks for the repository passphrase (masked); returns it, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, wrong: bool = False) -> None:
        super().__init__(classes="vault-modal")
        self.wrong = wrong

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Repository passphrase", classes="title")
            if self.wrong:
                yield Static("That passphrase was wrong; try again.", classes="warning")
            yield Input(password=True, id="passphrase", placeholder="passphrase")
            with Horizontal(classes="buttons"):
                yield Button("Unlock", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._finish(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._finish(self.query_one("#passphrase", Input).value)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _finish(self, value: str) -> None:
        if value:
            self.dismiss(value)


class ConfirmModal(ModalScreen[bool]):
    """A yes/no question for a non-destructive but consequential action."""

    BINDINGS = [Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__(classes="vault-modal")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Yes", id="yes", variant="primary")
                yield Button("No", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class TypedConfirmModal(ModalScreen[bool]):
    """A destructive action goes ahead only once the operator typed `expected` (the target's
    name) exactly, as `vault restore` asks on a terminal."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str, expected: str) -> None:
        super().__init__(classes="vault-modal")
        self.what = what
        self.expected = expected

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="danger"):
            yield Label("Confirm", classes="title")
            yield Static(self.what, id="what", markup=False)
            yield Static(f"Type {self.expected} to go ahead:", id="prompt", markup=False)
            yield Input(id="typed", placeholder=self.expected)
            with Horizontal(classes="buttons"):
                yield Button("Go ahead", id="ok", variant="error", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#ok", Button).disabled = event.value != self.expected

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value == self.expected:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok" and self.query_one("#typed", Input).value == self.expected:
            self.dismiss(True)
        elif event.button.id == "cancel":
            self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)
