"""A yes/no question about something that cannot be undone; answers True only on an explicit yes."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmDialog(ModalScreen[bool]):
    """`title` and `question` are plain text, shown as written (they name the user's accounts
    and calendars, whose names may hold "[")."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, question: str, confirm: str, *, danger: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.question = question
        self.confirm = confirm
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content.assemble((self.title_text, "bold")), classes="dialog-title")
            yield Static(Content(self.question), classes="dialog-body")
            yield from self.details()
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (n)", id="no")
                yield Button(
                    f"{self.confirm} (y)", id="yes", variant="error" if self.danger else "primary"
                )

    def details(self) -> ComposeResult:
        """What a question shows between its text and its buttons (none here)."""
        yield from ()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
