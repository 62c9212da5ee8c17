"""How a screen refills its DataTable on a live update: only when what it shows changes."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
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


def replace_rows(table: DataTable[Cell], rows: Sequence[Row]) -> None:
    """Show `rows` in `table`, the cursor kept on its row (the last one if fewer remain).

    A table already showing them is left as it is: a cleared table is sized for its headers
    until it is next idle, and behind a dialog it is not, so a live update that changed
    nothing left the columns cut to their headers ("alex.", "Goog" in CI snapshots)."""
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
    if rows:
        table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
