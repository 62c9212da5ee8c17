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
    ("7", "week", "Week"),
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
        label, colour = STATE_LOOK[self.state]
        # Widest form that fits: full labels, then short ones, then no name, then keys only.
        for short, named, keys_only in (
            (False, True, False),
            (True, True, False),
            (True, False, False),
            (True, False, True),
        ):
            text = self._tabs(short, named, keys_only)
            if text.cell_len + len(label) + 2 <= width:
                break
        text.append(" " * max(1, width - text.cell_len - len(label) - 1))
        text.append(label, style=colour)
        return text

    def _tabs(self, short: bool, named: bool, keys_only: bool) -> Text:
        text = Text(" calsync " if named else "", style="bold cyan")
        for key, mode, label in SCREENS:
            current = mode == self.mode
            shown = label.split()[0] if short else label
            text.append(" ")
            if keys_only and not current:
                text.append(key, style="dim")
                continue
            text.append(key, style="reverse bold" if current else "dim")
            text.append(f" {shown} ", style="reverse bold" if current else "")
        return text
