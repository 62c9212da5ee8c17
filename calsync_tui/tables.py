"""How a screen refills its DataTable on a live update: only when what it shows changes."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.render import measure
from textual.widgets import DataTable

Cell = str | Text
# A row's key (the id of what it shows) and its cells.
Row = tuple[str, Sequence[Cell]]


def _look(cell: Cell) -> object:
    # Rich's Text equality compares the text and its spans but not the cell's own style, so a
    # calendar's swatch changing colour would not count as a change.
    if isinstance(cell, Text):
        return (cell.plain, str(cell.style), cell.spans)
    return cell


def _fit_columns(table: DataTable[Cell], rows: Sequence[Row]) -> None:
    # Textual widens a column for new rows only when the table is next idle, and keeps the
    # lines it drew before that in a cache that the widening does not empty: a table drawn in
    # between (the screen's refresh can come first) was drawn cut to its headers ("alex.") and
    # stayed so, behind a dialog opened next, until something else changed it. Widened here,
    # as the rows are added, it is never drawn unmeasured. Measured as Textual measures (a
    # string cell is markup), and never narrowed, as Textual does not, so the idle measure
    # finds nothing left to change.
    console = table.app.console
    for index, column in enumerate(table.ordered_columns):
        widest = max(
            (
                measure(console, Text.from_markup(cell) if isinstance(cell, str) else cell, 1)
                for cell in (cells[index] for _, cells in rows if index < len(cells))
            ),
            default=0,
        )
        column.content_width = max(column.content_width, widest)


def replace_rows(table: DataTable[Cell], rows: Sequence[Row]) -> None:
    """Show `rows` in `table`, the cursor kept on its row (the last one if fewer remain),
    each column as wide as its widest cell from the start.

    A table already showing them is left as it is: redrawing it changes nothing."""
    # Read from the table itself: no copy of what it shows is kept beside it to fall out of step.
    shown = [
        (row.key.value, [_look(cell) for cell in table.get_row(row.key)])
        for row in table.ordered_rows
    ]
    if shown == [(key, [_look(cell) for cell in cells]) for key, cells in rows]:
        return
    cursor = table.cursor_row
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    _fit_columns(table, rows)
    if rows:
        table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
