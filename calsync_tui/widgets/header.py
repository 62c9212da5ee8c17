"""The top bar: the app's name, the screens with their keys, and the live connection's state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from calsync_tui.stream import ConnectionState

SCREENS = (
    ("1", "overview", "Overview"),
    ("2", "accounts", "Accounts"),
    ("3", "calendars", "Calendars"),
    ("4", "busy_blocks", "Busy blocks"),
    ("5", "sync_log", "Sync log"),
    ("6", "channels", "Channels"),
)

STATE_LOOK = {
    ConnectionState.CONNECTING: ("◌ connecting", "yellow"),
    ConnectionState.LIVE: ("● live", "green"),
    ConnectionState.RECONNECTING: ("○ reconnecting", "bold red"),
}


class HeaderBar(Static):
    """Rendered from the current mode and connection state; the app refreshes it on change."""

    DEFAULT_CSS = """
    HeaderBar { height: 1; background: $panel; color: $text; }
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.state = ConnectionState.CONNECTING

    def show_state(self, state: ConnectionState) -> None:
        self.state = state
        self.update(self._text())

    def on_mount(self) -> None:
        self.update(self._text())

    def on_resize(self) -> None:
        self.update(self._text())

    def _text(self) -> Text:
        width = self.size.width or 80
        text = Text(" calsync ", style="bold cyan")
        compact = width < 100
        for key, mode, label in SCREENS:
            shown = label.split()[0] if compact else label
            style = "reverse bold" if mode == self.mode else ""
            text.append(" ")
            text.append(f"{key}", style="dim" if mode != self.mode else style)
            text.append(f" {shown} ", style=style)
        label, colour = STATE_LOOK[self.state]
        gap = max(1, width - text.cell_len - len(label) - 1)
        text.append(" " * gap)
        text.append(label, style=colour)
        return text
