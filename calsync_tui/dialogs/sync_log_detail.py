"""One sync log in full: every count, the notes and the error text."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from calsync_tui.formatting import STATUS_STYLE, duration
from shared.schemas import SyncLogOut


class SyncLogDetail(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, log: SyncLogOut, calendar_name: str) -> None:
        super().__init__(classes="dialog-screen")
        self.entry = log
        self.calendar_name = calendar_name

    def compose(self) -> ComposeResult:
        log = self.entry
        with VerticalScroll(classes="dialog detail"):
            yield Static(
                Text.assemble(
                    (f"Sync #{log.id}  ", "bold"),
                    (self.calendar_name, "bold"),
                    "  ",
                    (log.status.value, STATUS_STYLE[log.status]),
                ),
                classes="dialog-title",
            )
            facts = Table.grid(padding=(0, 2))
            facts.add_column(style="dim")
            facts.add_column()
            facts.add_column(style="dim")
            facts.add_column()
            rows = [
                ("kind", log.kind.value, "trigger", log.trigger),
                ("started", f"{log.started_at:%Y-%m-%d %H:%M:%S}", "took", duration(log)),
                (
                    "events fetched",
                    str(log.events_fetched),
                    "provider calls",
                    str(log.provider_calls),
                ),
                (
                    "events created",
                    str(log.events_created),
                    "blocks created",
                    str(log.blocks_created),
                ),
                (
                    "events updated",
                    str(log.events_updated),
                    "blocks updated",
                    str(log.blocks_updated),
                ),
                (
                    "events deleted",
                    str(log.events_deleted),
                    "blocks deleted",
                    str(log.blocks_deleted),
                ),
                ("retries", str(log.retries), "", ""),
            ]
            for row in rows:
                facts.add_row(*(Text(cell) for cell in row))  # a str cell would be markup
            yield Static(facts, classes="dialog-body")
            notes = "\n".join(f" • {note}" for note in log.notes) or " (none)"
            # Assembled, not markup: notes carry calendar names and the provider's words.
            yield Static(Content.assemble(("Notes", "bold"), "\n", notes), classes="dialog-body")
            if log.error:
                yield Static(
                    Text.assemble(("Error\n", "bold red"), log.error), classes="dialog-body"
                )
            yield Static("[dim]esc closes[/dim]", classes="dialog-body")

    def action_close(self) -> None:
        self.dismiss(None)
