"""Busy blocks: every block calsync keeps, filtered by target or source, loaded page by page."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Select, Static

from calsync_tui.dialogs.explain import ExplainDialog
from calsync_tui.formatting import when
from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.stream import StreamBatch
from calsync_tui.widgets.row_table import Row, RowTable
from shared.schemas import MAX_PAGE, BusyBlockOut

EARLIEST = datetime.min.replace(tzinfo=UTC)
# A small first page shows something at once; the rest come in the largest pages there are.
FIRST_PAGE = 200


class BusyBlocksScreen(CalsyncScreen):
    MODE = "busy_blocks"
    BINDINGS = [Binding("enter,e", "explain", "Why", show=True)]

    def __init__(self) -> None:
        super().__init__()
        self.target: int | None = None
        self.source: int | None = None
        self.loaded = 0
        self.fetching = False
        self.stale = False
        # Measured on every load, for the tests and whoever wonders: first rows, all rows.
        self.first_page_seconds: float | None = None
        self.last_load_seconds: float | None = None

    def body(self) -> ComposeResult:
        with Horizontal(id="block-filters"):
            yield Static("target", classes="filter-label")
            yield Select[int]([], prompt="any calendar", id="filter-target", allow_blank=True)
            yield Static("source", classes="filter-label")
            yield Select[int]([], prompt="any calendar", id="filter-source", allow_blank=True)
            yield Static("", id="blocks-count")
        table = RowTable(("target", "source", "start", "end", "title", ""), id="blocks")
        table.border_title = "Busy blocks, soonest first"
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(RowTable).focus()

    def reload(self) -> None:
        if self.fetching:
            self.stale = True
            return
        self.load()

    def live(self, batch: StreamBatch) -> None:
        changed = any(
            log.blocks_created or log.blocks_updated or log.blocks_deleted for log in batch.finished
        )
        if changed or batch.hello:
            self.reload()

    def _fill_filters(self) -> None:
        # Text, not str: Select reads a str prompt as markup, and the names are the user's.
        options = [(Text(c.name), c.id) for c in self.host.calendars.values()]
        for select_id, chosen in (("#filter-target", self.target), ("#filter-source", self.source)):
            select: Select[int] = self.query_one(select_id, Select)
            with self.prevent(Select.Changed):
                select.set_options(options)
                if chosen is not None and any(value == chosen for _, value in options):
                    select.value = chosen

    @on(Select.Changed)
    def filter_changed(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, int) else None
        if event.select.id == "filter-target":
            self.target = value
        else:
            self.source = value
        self.stale = False
        self.load()

    @work(exclusive=True, group="blocks", exit_on_error=False)
    async def load(self) -> None:
        """Fetch every page in the background; each page shows as soon as it arrives."""
        self.fetching = True
        started = time.perf_counter()
        try:
            if not self.host.calendars:
                self.host.remember_calendars(await self.host.api.calendars())
            self._fill_filters()
            table = self.query_one(RowTable)
            count = self.query_one("#blocks-count", Static)
            cursor: str | None = None
            first = True
            loaded = 0
            while True:
                page = await self.host.api.busy_blocks(
                    target_calendar_id=self.target,
                    source_calendar_id=self.source,
                    limit=FIRST_PAGE if first else MAX_PAGE,
                    cursor=cursor,
                )
                if first:
                    # Cleared only now, so the old rows stay on screen until new ones arrive.
                    table.clear()
                    first = False
                    self.first_page_seconds = time.perf_counter() - started
                table.add_rows([self._cells(block) for block in page.items], order=_order)
                loaded += len(page.items)
                self.loaded = loaded
                cursor = page.next_cursor
                more = " (loading…)" if cursor else ""
                count.update(f"{loaded:,} blocks{more}")
                if cursor is None:
                    break
            self.last_load_seconds = time.perf_counter() - started
        finally:
            self.fetching = False
        if self.stale:
            self.stale = False
            self.load()

    def _cells(self, block: BusyBlockOut) -> Row:
        flag = ("", "")
        if block.user_deleted:
            flag = ("deleted by hand", "dim")
        elif block.user_modified:
            flag = ("moved by hand", "yellow")
        target = self.host.calendar_name(block.target_calendar_id)
        source = self.host.calendar_name(block.source_calendar_id)
        start = when(block.start_at, block.all_day)
        return (
            (target, ""),
            (source, ""),
            (start, ""),
            (when(block.end_at, block.all_day), ""),
            (block.summary, ""),
            flag,
            # Not shown (beyond the columns): the event the block keeps, what the rows are
            # sorted by.
            (str(block.source_event_id or ""), ""),
            (
                f"{(block.start_at or EARLIEST).isoformat()}\0{target}\0{source}\0"
                f"{block.summary}\0{block.id:020d}",
                "",
            ),
        )

    # -- why one is there ----------------------------------------------------------------------

    @on(RowTable.Chosen)
    def row_chosen(self, event: RowTable.Chosen) -> None:
        self.action_explain()

    def action_explain(self) -> None:
        """Why the block under the cursor is there: the explain of the event it keeps."""
        table = self.query_one(RowTable)
        if not 0 <= table.cursor_row < table.row_count:
            return
        event_id = table.rows[table.cursor_row][-2][0]
        if event_id:
            self.app.push_screen(ExplainDialog(self.host, int(event_id)))
        else:
            self.notify("The event this block kept is gone; the next sync removes the block.")


def _order(row: Row) -> str:
    return row[-1][0]
