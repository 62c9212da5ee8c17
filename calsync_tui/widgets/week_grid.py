"""The week drawn as a picture: it redraws itself from a WeekPicture at whatever size it has."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from calsync_tui.week import WeekPicture, draw


class WeekGrid(Widget):
    """Days across, time down, one sub-column per calendar (calsync_tui/week.py draws it)."""

    DEFAULT_CSS = """
    WeekGrid { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.picture: WeekPicture | None = None

    def show(self, picture: WeekPicture) -> None:
        self.picture = picture
        self.refresh()

    def render(self) -> RenderableType:
        if self.picture is None:
            return Text("loading the week…", style="dim")
        lines = draw(self.picture, self.size.width, self.size.height)
        return Text("\n").join(lines)
