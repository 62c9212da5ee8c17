"""A read-only table that draws only the rows on screen, so 100k rows cost what 30 do."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from calsync_tui.formatting import one_line

Cell = tuple[str, str]  # text and a Rich style ("" for none)
Row = tuple[Cell, ...]

GAP = 2


def _fit(text: str, width: int) -> str:
    text = one_line(text)
    if cell_len(text) <= width:
        return text + " " * (width - cell_len(text))
    out, used = "", 0
    for char in text:
        size = cell_len(char)
        if used + size > width - 1:
            break
        out, used = out + char, used + size
    return out + "…" + " " * (width - used - 1)


class RowTable(ScrollView, can_focus=True):
    """Rows are plain tuples of (text, style); DataTable measures every cell it is given (about
    0.2 ms a row), which makes 20k rows take seconds. This measures text lengths only."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
    ]
    DEFAULT_CSS = """
    RowTable { background: $surface; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = set()

    cursor_row: reactive[int] = reactive(0)

    @dataclass
    class Chosen(Message):
        """The row under the cursor was clicked again: as `enter` would, open it."""

        table: RowTable
        row: int

    def __init__(self, columns: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = list(columns)
        self.widths = [cell_len(c) for c in self.columns]
        self.rows: list[Row] = []
        self._order: Callable[[Row], Any] | None = None

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def clear(self) -> None:
        self.rows = []
        self.widths = [cell_len(c) for c in self.columns]
        self.cursor_row = 0
        self._resized()

    def add_rows(self, rows: Sequence[Row], order: Callable[[Row], Any] | None = None) -> None:
        """Append rows, keeping them sorted by `order` if given."""
        self._measure(rows)
        self.rows.extend(rows)
        if order is not None:
            self.rows.sort(key=order)
        self._resized()

    def set_rows(self, rows: list[Row], cursor: int, new: Iterable[Row] | None = None) -> None:
        """Show `rows` instead, the cursor on row `cursor`. Only `new` rows (all, if not given)
        are measured: columns widen for them and never narrow, so a long list is cheap to
        change."""
        self._measure(rows if new is None else new)
        self.rows = rows
        self.cursor_row = max(0, min(cursor, len(rows) - 1))
        self._resized()

    def _measure(self, rows: Iterable[Row]) -> None:
        widths = self.widths
        shown = range(len(widths))  # a row may carry hidden cells past the columns
        for row in rows:
            for index, (text, _) in zip(shown, row, strict=False):
                if len(text) > widths[index] or not text.isascii():
                    widths[index] = max(widths[index], cell_len(one_line(text)))

    def _resized(self) -> None:
        width = sum(self.widths) + GAP * len(self.widths) + 1
        self.virtual_size = Size(width, len(self.rows) + 1)
        self.cursor_row = min(self.cursor_row, max(0, len(self.rows) - 1))
        self.refresh()

    def watch_cursor_row(self, old: int, new: int) -> None:
        top = int(self.scroll_y)
        visible = max(1, self.scrollable_content_region.height - 1)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False)
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = int(self.scroll_y) + offset.y - 1
        if index >= len(self.rows):
            return
        if index == self.cursor_row and self.has_focus:
            self.post_message(self.Chosen(self, index))
        self.cursor_row = index

    def action_cursor(self, delta: int) -> None:
        if self.rows:
            self.cursor_row = max(0, min(len(self.rows) - 1, self.cursor_row + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.scrollable_content_region.height - 1))

    def action_edge(self, end: int) -> None:
        if self.rows:
            self.cursor_row = len(self.rows) - 1 if end else 0

    def _line(self, cells: Sequence[Cell], base: Style) -> list[Segment]:
        segments = [Segment(" ", base)]
        for (text, style), width in zip(cells, self.widths, strict=False):
            look = base + Style.parse(style) if style else base
            segments.append(Segment(_fit(text, width), look))
            segments.append(Segment(" " * GAP, base))
        return segments

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            header = [(c, "bold") for c in self.columns]
            segments = self._line(header, base)
        else:
            index = scroll_y + y - 1
            if index >= len(self.rows):
                return Strip.blank(width, base)
            look = base
            if index == self.cursor_row and self.has_focus:
                look = base + Style(reverse=True)
            segments = self._line(self.rows[index], look)
        strip = Strip(segments).crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, base)
