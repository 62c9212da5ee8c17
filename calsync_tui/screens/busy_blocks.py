"""Busy blocks: every block calsync keeps, filtered by target or source, loaded page by page."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Select, Static

from calsync_tui.formatting import when
from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.stream import StreamBatch
from shared.schemas import MAX_PAGE, BusyBlockOut

EARLIEST = datetime.min.replace(tzinfo=UTC)


class StartCell(Text):
    """The start time as shown, carrying what the table sorts by (rows arrive in id order)."""

    def __init__(self, shown: str, order: tuple[datetime, str, str, str, int]) -> None:
        super().__init__(shown)
        self.order = order


class BusyBlocksScreen(CalsyncScreen):
    MODE = "busy_blocks"

    def __init__(self) -> None:
        super().__init__()
        self.target: int | None = None
        self.source: int | None = None
        self.loaded = 0
        self.fetching = False
        self.stale = False
        self.last_load_seconds: float | None = None

    def body(self) -> ComposeResult:
        with Horizontal(id="block-filters"):
            yield Static("target", classes="filter-label")
            yield Select[int]([], prompt="any calendar", id="filter-target", allow_blank=True)
            yield Static("source", classes="filter-label")
            yield Select[int]([], prompt="any calendar", id="filter-source", allow_blank=True)
            yield Static("", id="blocks-count")
        table: DataTable[str | Text] = DataTable(id="blocks", cursor_type="row", zebra_stripes=True)
        table.border_title = "Busy blocks"
        yield table

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label in ("target", "source", "start", "end", "title", ""):
            table.add_column(label, key=label or "flag")
        super().on_mount()

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

    def _options(self) -> list[tuple[str, int]]:
        return [(c.name, c.id) for c in self.host.calendars.values()]

    def _fill_filters(self) -> None:
        options = self._options()
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
        self.fetching = False
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
            table: DataTable[str | Text] = self.query_one(DataTable)
            cursor = table.cursor_row
            first = True
            cursor_text: str | None = None
            count = self.query_one("#blocks-count", Static)
            page_cursor: str | None = None
            self.loaded = 0
            while True:
                page = await self.host.api.busy_blocks(
                    target_calendar_id=self.target,
                    source_calendar_id=self.source,
                    limit=MAX_PAGE,
                    cursor=page_cursor,
                )
                if first:
                    # Cleared only now, so the old rows stay on screen until new ones arrive.
                    table.clear()
                    first = False
                table.add_rows([self._cells(block) for block in page.items])
                table.sort("start", key=_order)
                self.loaded += len(page.items)
                if cursor > 0 and self.loaded > cursor and cursor_text is None:
                    table.move_cursor(row=cursor, animate=False)
                    cursor_text = "restored"
                page_cursor = page.next_cursor
                more = " (loading…)" if page_cursor else ""
                count.update(f"{self.loaded:,} blocks{more}")
                if page_cursor is None:
                    break
            self.last_load_seconds = time.perf_counter() - started
        finally:
            self.fetching = False
        if self.stale:
            self.stale = False
            self.load()

    def _cells(self, block: BusyBlockOut) -> tuple[str | Text, ...]:
        flag: str | Text = ""
        if block.user_deleted:
            flag = Text("deleted by hand", style="dim")
        elif block.user_modified:
            flag = Text("moved by hand", style="yellow")
        target = self.host.calendar_name(block.target_calendar_id)
        source = self.host.calendar_name(block.source_calendar_id)
        order = (block.start_at or EARLIEST, target, source, block.summary, block.id)
        return (
            target,
            source,
            StartCell(when(block.start_at, block.all_day), order),
            when(block.end_at, block.all_day),
            block.summary,
            flag,
        )


def _order(cell: object) -> tuple[datetime, str, str, str, int]:
    return cell.order if isinstance(cell, StartCell) else (EARLIEST, "", "", "", 0)
