"""Sync log: newest first, status in colour, counts and notes; `enter` opens one in full. Older
entries load page by page as the cursor or the scroll nears the end; `o` goes to the oldest."""

from __future__ import annotations

from datetime import datetime, timedelta

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding

from calsync_tui.dialogs.sync_log_detail import SyncLogDetail
from calsync_tui.formatting import STATUS_STYLE, ago, changes, duration
from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.stream import StreamBatch
from calsync_tui.sync_log_history import SyncLogHistory
from calsync_tui.widgets.row_table import Row, RowTable
from shared.schemas import MAX_PAGE, SyncLogOut

# A small newest page shows at once (and is what a reload fetches again); older ones are larger.
FIRST_PAGE = 200
OLDER_PAGE = 500
# The next older page is asked for this many rows before the end, so scrolling rarely waits.
AHEAD = 50
REDRAW_EVERY = timedelta(minutes=1)
COLUMNS = ("when", "calendar", "kind", "status", "fetched", "changes", "calls", "took", "notes")


class SyncLogScreen(CalsyncScreen):
    MODE = "sync_log"
    BINDINGS = [
        Binding("enter", "open", "Details", show=True),
        Binding("o", "oldest", "Oldest"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.history = SyncLogHistory()
        self.fetching_older = False
        self.to_oldest = False
        # Rows as drawn, by log id: a row is drawn again only when its log changed or it is
        # among the newest, whose ages ("12 s ago") move; with 20,000 entries loaded, drawing
        # every row on every live update would take a fifth of a second. Every row is drawn
        # again at most once a minute, so older ages move too.
        self._drawn: dict[int, tuple[SyncLogOut, Row]] = {}
        self._all_drawn_at: datetime | None = None

    @property
    def rows(self) -> list[SyncLogOut]:
        return self.history.entries

    def body(self) -> ComposeResult:
        table = RowTable(COLUMNS, id="logs")
        table.border_title = "Sync log, newest first"
        yield table

    def on_mount(self) -> None:
        table = self.query_one(RowTable)
        self.watch(table, "cursor_row", self._near_end, init=False)
        self.watch(table, "scroll_y", self._near_end, init=False)
        super().on_mount()
        table.focus()

    # -- loading ------------------------------------------------------------------------------

    def reload(self) -> None:
        self.load()

    def live(self, batch: StreamBatch) -> None:
        if batch.hello:
            self.reload()  # back after a gap: what was missed comes with the newest page
        elif batch.finished and self.history.started:
            self.history.finished(batch.finished)
            self.show()

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def load(self) -> None:
        calendars = await self.host.api.calendars()
        self.host.remember_calendars(calendars)
        page = await self.host.api.sync_logs(limit=FIRST_PAGE)
        self.history.newest(page, [c.id for c in calendars])
        self.show()
        self._near_end()

    def _near_end(self) -> None:
        """Ask for the next older page when the cursor or the view is near the last row."""
        if self.fetching_older or self.history.older is None:
            return
        table = self.query_one(RowTable)
        last = table.row_count - 1
        seen = int(table.scroll_y) + table.scrollable_content_region.height
        if table.cursor_row >= last - AHEAD or seen >= last - AHEAD or self.to_oldest:
            self.fetching_older = True  # now, not when the worker starts: one page at a time
            self._say_how_many()
            self.load_older(self.history.older)

    @work(group="logs-older", exit_on_error=False)
    async def load_older(self, cursor: str) -> None:
        try:
            limit = MAX_PAGE if self.to_oldest else OLDER_PAGE
            page = await self.host.api.sync_logs(limit=limit, cursor=cursor)
        finally:
            self.fetching_older = False
            self._say_how_many()
        if self.history.add_older(page, cursor):
            self.show()
        if self.to_oldest and self.history.complete:
            self.to_oldest = False
            self.query_one(RowTable).action_edge(1)
        self._near_end()

    def action_oldest(self) -> None:
        """To the oldest entry: the pages not loaded yet load one after the other first."""
        if self.history.complete:
            self.query_one(RowTable).action_edge(1)
            return
        self.to_oldest = True
        self._near_end()

    # -- showing ------------------------------------------------------------------------------

    def show(self) -> None:
        table = self.query_one(RowTable)
        logs = self.history.entries
        selected = self._selected_id()
        now = self.host.now()
        redraw = self._all_drawn_at is None or now - self._all_drawn_at >= REDRAW_EVERY
        if redraw:
            self._all_drawn_at = now
        drawn: dict[int, tuple[SyncLogOut, Row]] = {}
        rows: list[Row] = []
        new: list[Row] = []
        for index, log in enumerate(logs):
            known = self._drawn.get(log.id)
            if redraw or known is None or known[0] is not log or index < FIRST_PAGE:
                row = self._cells(log, now)
                new.append(row)
            else:
                row = known[1]
            drawn[log.id] = (log, row)
            rows.append(row)
        self._drawn = drawn
        cursor = next((i for i, log in enumerate(logs) if log.id == selected), 0)
        table.set_rows(rows, cursor, new)
        self._say_how_many()

    def _selected_id(self) -> int | None:
        table = self.query_one(RowTable)
        row = table.cursor_row
        if 0 <= row < table.row_count:
            shown = table.rows[row]
            return int(shown[-1][0])
        return None

    def _say_how_many(self) -> None:
        table = self.query_one(RowTable)
        count = len(self.history.entries)
        if self.fetching_older:
            said = f"{count:,} loaded, loading older…"
        elif self.history.complete:
            said = f"all {count:,}"
        elif self.history.started:
            said = f"{count:,} loaded; older ones load as you scroll, o: the oldest"
        else:
            said = ""
        table.border_subtitle = said

    def _cells(self, log: SyncLogOut, now: datetime) -> Row:
        note = "; ".join(log.notes)
        if log.error:
            note = f"{log.error}" + (f"; {note}" if note else "")
        return (
            (ago(log.started_at, now), ""),
            (self.host.calendar_name(log.calendar_id), ""),
            (log.kind.value, ""),
            (log.status.value, STATUS_STYLE[log.status]),
            (str(log.events_fetched), ""),
            (changes(log), ""),
            (str(log.provider_calls), ""),
            (duration(log), ""),
            (note, ""),
            # Not shown (beyond the columns): which log the row is.
            (str(log.id), ""),
        )

    # -- opening one --------------------------------------------------------------------------

    @on(RowTable.Chosen)
    def row_chosen(self, event: RowTable.Chosen) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.query_one(RowTable).cursor_row
        if 0 <= row < len(self.rows):
            log = self.rows[row]
            self.app.push_screen(SyncLogDetail(log, self.host.calendar_name(log.calendar_id)))
