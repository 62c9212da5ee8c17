"""Why a busy block is there: the server's explain of the event it keeps, shown in full."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from calsync_tui.client import ApiError
from calsync_tui.host import DashboardHost
from shared.schemas import ExplainBlock, ExplainEvent


class ExplainDialog(ModalScreen[None]):
    """Asks `GET /api/v1/explain` for one event and shows its verdict, then each other
    calendar: the rule's verdict there and every block standing for it (what calsync would do
    with it now, who wrote it and in which sync)."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, host: DashboardHost, event_id: int) -> None:
        super().__init__(classes="dialog-screen")
        self.host = host
        self.event_id = event_id
        self.explained: ExplainEvent | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog detail", id="explain"):
            yield Static(Text("Why this block", style="bold"), classes="dialog-title")
            yield Static(Text("Asking the server…", style="dim"), id="explain-body")
            yield Static("[dim]esc closes[/dim]", classes="dialog-body")

    def on_mount(self) -> None:
        self.ask()

    @work(exclusive=True, exit_on_error=False)
    async def ask(self) -> None:
        body = self.query_one("#explain-body", Static)
        try:
            answer = await self.host.api.explain(self.event_id)
        except ApiError as error:
            body.update(Text(f"The server could not explain it: {error}", style="red"))
            return
        self.explained = next((e for e in answer.events if e.event_id == self.event_id), None)
        if self.explained is None:
            body.update(Text("The event this block keeps is gone from calsync.", style="dim"))
            return
        body.update(explained_text(self.explained, self.host.zone))

    def action_close(self) -> None:
        self.dismiss(None)


def explained_text(event: ExplainEvent, zone: tzinfo) -> Text:
    """The event, its verdict, then per other calendar its verdict and blocks."""
    text = Text()
    text.append(event.title or "(no title)", style="bold")
    text.append(f"  {event.calendar_name}  ", style="dim")
    text.append(_span(event.start_at, event.end_at, event.all_day, zone))
    text.append("\n")
    style = "green" if event.verdict == "blocks" else "italic"
    text.append(f"Your event: {event.reason}", style=style)
    for target in event.targets:
        text.append("\n\n")
        text.append(target.calendar_name, style="bold")
        mark = ("✓ ", "green") if target.verdict == "blocks" else ("✗ ", "dim")
        text.append(f"  {mark[0]}", style=mark[1])
        text.append(target.reason, style="" if target.verdict == "blocks" else "dim")
        for block in target.blocks:
            text.append("\n  ")
            text.append_text(_block(block, zone))
    return text


def _block(block: ExplainBlock, zone: tzinfo) -> Text:
    text = Text()
    text.append(f'"{block.summary}" ', style="cyan")
    text.append(_span(block.start_at, block.end_at, False, zone))
    text.append(f": {block.outcome_words}")
    if block.written_by:
        # "calsync", or what the person's hand did to it ("changed by hand").
        who = "written by calsync" if block.written_by == "calsync" else block.written_by
        text.append(f"\n    {who}", style="dim")
        if block.written_at is not None:
            text.append(f" {block.written_at.astimezone(zone):%a %d %b %H:%M}", style="dim")
        if block.sync_log_id is not None:
            text.append(f", sync #{block.sync_log_id}", style="dim")
    return text


def _span(start: datetime | None, end: datetime | None, all_day: bool, zone: tzinfo) -> str:
    if start is None or end is None:
        return ""
    if all_day:
        return f"{start:%a %d %b}, all day"
    start, end = start.astimezone(zone), end.astimezone(zone)
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%a %H:%M}"
    return f"{start:%a %d %b %H:%M}-{until}"
