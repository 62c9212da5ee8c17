"""The week drawn as a picture: it redraws itself from a WeekPicture at whatever size it has,
and a click on an event or block chooses it."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import RenderableType
from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from calsync_tui.week import Hits, WeekPicture, draw


class WeekGrid(Widget):
    """Days across, time down, one sub-column per calendar (calsync_tui/week.py draws it)."""

    DEFAULT_CSS = """
    WeekGrid { height: 1fr; }
    """

    @dataclass
    class Chosen(Message):
        """The item drawn where the user clicked."""

        key: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.picture: WeekPicture | None = None
        self.hits: Hits = {}

    def show(self, picture: WeekPicture) -> None:
        self.picture = picture
        self.refresh()

    def render(self) -> RenderableType:
        if self.picture is None:
            return Text("loading the week…", style="dim")
        hits: Hits = {}
        lines = draw(self.picture, self.size.width, self.size.height, hits)
        self.hits = hits
        return Text("\n").join(lines)

    def on_click(self, event: events.Click) -> None:
        key = self.hits.get((event.x, event.y))
        if key is not None:
            self.post_message(self.Chosen(key))
