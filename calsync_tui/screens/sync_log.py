"""Sync log: newest first, status in colour, counts and notes; `enter` opens one in full."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from calsync_tui.dialogs.sync_log_detail import SyncLogDetail
from calsync_tui.formatting import STATUS_STYLE, ago, changes, duration
from calsync_tui.screens.base import CalsyncScreen
from shared.schemas import SyncLogOut

PAGE = 500


class SyncLogScreen(CalsyncScreen):
    MODE = "sync_log"
    BINDINGS = [Binding("enter", "open", "Details", show=True)]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[SyncLogOut] = []

    def body(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="logs", cursor_type="row", zebra_stripes=True)
        table.border_title = "Sync log, newest first"
        yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "when", "calendar", "kind", "status", "fetched", "changes", "calls", "took", "notes"
        )
        super().on_mount()

    def reload(self) -> None:
        self.load()

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def load(self) -> None:
        if not self.host.calendars:
            self.host.remember_calendars(await self.host.api.calendars())
        page = await self.host.api.sync_logs(limit=PAGE)
        self.show(page.items)

    def show(self, logs: list[SyncLogOut]) -> None:
        table: DataTable[str | Text] = self.query_one(DataTable)
        selected = (
            self.rows[table.cursor_row].id if 0 <= table.cursor_row < len(self.rows) else None
        )
        table.clear()
        self.rows = logs
        now = self.host.now()
        for log in logs:
            note = "; ".join(log.notes)
            if log.error:
                note = f"{log.error}" + (f"; {note}" if note else "")
            table.add_row(
                ago(log.started_at, now),
                self.host.calendar_name(log.calendar_id),
                log.kind.value,
                Text(log.status.value, style=STATUS_STYLE[log.status]),
                str(log.events_fetched),
                changes(log),
                str(log.provider_calls),
                duration(log),
                note,
                key=str(log.id),
            )
        if selected is not None:
            index = next((i for i, log in enumerate(logs) if log.id == selected), 0)
            table.move_cursor(row=index, animate=False)

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.rows):
            log = self.rows[row]
            self.app.push_screen(SyncLogDetail(log, self.host.calendar_name(log.calendar_id)))
