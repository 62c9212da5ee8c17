"""replace_rows, the live refill the Overview, Accounts, Calendars and Channels tables share: left
alone when nothing changes (a style counts), the cursor kept on its row, the columns as wide as
their cells however early the table is drawn."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.overview import OverviewScreen
from calsync_tui.tables import Row, replace_rows
from tests.tui.conftest import SIZE, live, snapshot_app, until


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(cursor_type="row")
        table.add_columns("calendar", "sync")
        yield table


def rows(count: int, sync_style: str = "green") -> list[Row]:
    """Fresh cells each call, as a live update builds them."""
    return [(str(i), [Text(f"Calendar {i}"), Text("● on", style=sync_style)]) for i in range(count)]


async def test_an_update_that_changes_nothing_leaves_the_table_as_it_is() -> None:
    app = OneTable()
    async with app.run_test() as pilot:
        table: DataTable[str | Text] = app.query_one(DataTable)
        first = rows(3)
        replace_rows(table, first)
        await pilot.pause()
        replace_rows(table, rows(3))
        await pilot.pause()
        # Still the cells it was first given: not cleared and refilled.
        assert all(table.get_row(key)[0] is cells[0] for key, cells in first)


async def test_a_cell_whose_style_alone_changes_is_redrawn() -> None:
    # Rich's Text equality ignores a cell's own style: the green "● on" equals a red one.
    app = OneTable()
    async with app.run_test() as pilot:
        table: DataTable[str | Text] = app.query_one(DataTable)
        replace_rows(table, rows(3))
        replace_rows(table, rows(3, sync_style="red"))
        await pilot.pause()
        sync = table.get_row("1")[1]
        assert isinstance(sync, Text)
        assert str(sync.style) == "red"


async def test_the_cursor_stays_on_its_row_and_within_the_rows_left() -> None:
    app = OneTable()
    async with app.run_test() as pilot:
        table: DataTable[str | Text] = app.query_one(DataTable)
        replace_rows(table, rows(5))
        table.move_cursor(row=3)
        replace_rows(table, [(key, [Text("renamed"), *cells[1:]]) for key, cells in rows(5)])
        await pilot.pause()
        assert table.cursor_row == 3
        assert table.get_row("3")[0] == Text("renamed")
        replace_rows(table, rows(2))
        await pilot.pause()
        assert table.cursor_row == 1
        assert [row.key.value for row in table.ordered_rows] == ["0", "1"]
        replace_rows(table, [])
        await pilot.pause()
        assert table.row_count == 0


async def test_a_table_drawn_before_it_is_next_idle_shows_whole_cells() -> None:
    # The screen can draw the table between the refill and the table's own idle measure (the
    # Accounts table behind a dialog, drawn "alex." in CI): what it draws then must not be cut.
    app = OneTable()
    async with app.run_test(size=(80, 10)) as pilot:
        table: DataTable[str | Text] = app.query_one(DataTable)
        await pilot.pause()
        email = "alex.morgan@personal.example.com"
        replace_rows(table, [("1", [Text(email), Text("● on")])])
        drawn_early = table.render_line(1).text  # row 0, under the header
        await pilot.pause()
        assert email in drawn_early
        # And on the screen, once the table has been idle: the lines drawn early are kept.
        assert email in app.screen._compositor.render_strips()[1].text


async def test_the_overviews_recent_syncs_are_left_as_they_are_by_an_update_that_changes_nothing(
    demo: DemoWorld,
) -> None:
    # Cleared and refilled on every live update, the table raced its own measuring as above.
    app = snapshot_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        table: DataTable[str | Text] = screen.query_one("#recent", DataTable)
        await until(pilot, lambda: table.row_count > 0, what="the recent syncs")
        assert screen.data is not None
        shown = [table.get_row_at(row)[0] for row in range(table.row_count)]
        screen.show(screen.data)  # what a live status update does, the clock standing still
        await pilot.pause()
        assert [table.get_row_at(row)[0] for row in range(table.row_count)] == shown
        assert all(table.get_row_at(row)[0] is cell for row, cell in enumerate(shown))
