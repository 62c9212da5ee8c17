"""Calendars: every calendar with its switches; a settings form (`e`, `enter`), the same switches
as single keys, sync now, full reconcile."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from calsync_tui.dialogs.calendar_settings import CalendarSettingsDialog, described
from calsync_tui.dialogs.confirm import ConfirmDialog
from calsync_tui.dialogs.full_reconcile import FullReconcileDialog
from calsync_tui.formatting import ago, plain_row
from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.tables import replace_rows
from shared.domain import BusyTitle, CalendarRole, CalendarStatus, PushState
from shared.schemas import CalendarOut, CalendarPatch

ROLE_ORDER = (CalendarRole.BOTH, CalendarRole.SOURCE, CalendarRole.TARGET)
COLUMNS = (
    "account",
    "calendar",
    " ",
    "sync",
    "role",
    "blocks show",
    "all-day",
    "events",
    "blocks",
    "last sync",
    "push",
)


def _cells(calendar: CalendarOut, now_text: str) -> list[Text]:
    swatch = Text("██", style=calendar.color) if calendar.color else Text("  ")
    sync = Text("● on", style="green") if calendar.sync_enabled else Text("○ off", style="dim")
    if calendar.status is CalendarStatus.NEEDS_YOU:
        # The safety catch holds deletes of its blocks: `D` lets them go.
        sync = Text("! needs you", style="bold red")
    role = calendar.role.value
    if calendar.read_only:
        role += " (read-only)"
    shows = "Busy" if calendar.busy_title == BusyTitle.PRIVATE else "Busy - title"
    if calendar.push is PushState.POLLED:
        # Polled by design (a provider without push, no public URL): not a fault.
        push = Text("polled", style="dim")
    elif calendar.channel_state is None:
        push = Text("polling" if calendar.sync_enabled else "-", style="dim")
    else:
        push = Text(
            calendar.channel_state.value,
            style={"active": "green", "failing": "red"}.get(calendar.channel_state.value, "dim"),
        )
    # Plain text, not markup: the names are the user's ("Team [old]").
    return plain_row(
        calendar.account_email,
        calendar.name,
        swatch,
        sync,
        role,
        shows,
        "yes" if calendar.include_all_day else "no",
        f"{calendar.events:,}",
        f"{calendar.busy_blocks:,}",
        now_text,
        push,
    )


HELP = (
    "[b]e[/b]/[b]enter[/b] settings  [b]space[/b] sync on/off  [b]r[/b] role  "
    "[b]p[/b] show titles  [b]A[/b] all-day  [b]s[/b] sync now  [b]F[/b] full reconcile"
)
# Shown only while a calendar needs the user (the safety catch holds deletes of its blocks).
HELP_HELD = "[b]D[/b] confirm held deletes  [b]s[/b] sync now  [b]e[/b] settings"


class CalendarsScreen(CalsyncScreen):
    MODE = "calendars"
    BINDINGS = [
        Binding("e", "edit", "Settings"),
        Binding("space", "toggle_sync", "Sync on/off"),
        Binding("r", "cycle_role", "Role"),
        Binding("p", "toggle_privacy", "Privacy"),
        Binding("A", "toggle_all_day", "All-day"),
        Binding("s", "sync_now", "Sync now"),
        Binding("F", "full_reconcile", "Full reconcile"),
        Binding("D", "confirm_deletes", "Confirm held deletes", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[CalendarOut] = []

    def body(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="calendars", cursor_type="row")
        table.border_title = "Calendars"
        yield table
        yield Static(HELP, id="calendars-help", classes="help")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        super().on_mount()

    def reload(self) -> None:
        self.load()

    @work(exclusive=True, group="calendars", exit_on_error=False)
    async def load(self) -> None:
        calendars = await self.host.api.calendars()
        self.host.remember_calendars(calendars)
        self.show(calendars)

    def show(self, calendars: list[CalendarOut]) -> None:
        table: DataTable[str | Text] = self.query_one(DataTable)
        self.rows = calendars
        held = any(c.status is CalendarStatus.NEEDS_YOU for c in calendars)
        self.query_one("#calendars-help", Static).update(HELP_HELD if held else HELP)
        now = self.host.now()
        replace_rows(table, [(str(c.id), _cells(c, ago(c.last_sync_at, now))) for c in calendars])

    def selected(self) -> CalendarOut | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def _replace(self, changed: CalendarOut) -> None:
        self.rows = [changed if c.id == changed.id else c for c in self.rows]
        self.host.remember_calendars([changed])
        self.show(self.rows)

    @work(group="calendar-change", exit_on_error=False)
    async def change(self, calendar: CalendarOut, patch: CalendarPatch, said: str) -> None:
        changed = await self.host.api.change_calendar(calendar.id, patch)
        self._replace(changed)
        self.notify(said, title=calendar.name)

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_edit()

    def action_edit(self) -> None:
        if (calendar := self.selected()) is not None:
            dialog = CalendarSettingsDialog(self.host.api, calendar)
            self.app.push_screen(dialog, lambda saved: self._edited(calendar, saved))

    def _edited(self, before: CalendarOut, saved: CalendarOut | None) -> None:
        if saved is not None:
            self._replace(saved)
            self.notify(described(before, saved), title=saved.name)

    def action_toggle_sync(self) -> None:
        if (calendar := self.selected()) is not None:
            on = not calendar.sync_enabled
            said = (
                "sync on: syncing now" if on else "sync off: removing the blocks it made elsewhere"
            )
            self.change(calendar, CalendarPatch(sync_enabled=on), said)

    def action_cycle_role(self) -> None:
        if (calendar := self.selected()) is not None:
            order: tuple[CalendarRole, ...] = ROLE_ORDER
            if calendar.read_only:
                order = (CalendarRole.SOURCE,)
            role = (
                order[(order.index(calendar.role) + 1) % len(order)]
                if calendar.role in order
                else order[0]
            )
            self.change(calendar, CalendarPatch(role=role), f"role: {role.value}")

    def action_toggle_privacy(self) -> None:
        if (calendar := self.selected()) is not None:
            title = (
                BusyTitle.TITLE if calendar.busy_title == BusyTitle.PRIVATE else BusyTitle.PRIVATE
            )
            said = (
                'its blocks say "Busy - <title>"'
                if title == BusyTitle.TITLE
                else 'its blocks say only "Busy"'
            )
            self.change(calendar, CalendarPatch(busy_title=title), said)

    def action_toggle_all_day(self) -> None:
        if (calendar := self.selected()) is not None:
            on = not calendar.include_all_day
            said = "all-day events block" if on else "all-day events do not block"
            self.change(calendar, CalendarPatch(include_all_day=on), said)

    @work(group="sync-now", exit_on_error=False)
    async def action_sync_now(self) -> None:
        calendar = self.selected()
        if calendar is None:
            return
        accepted = await self.host.api.sync(calendar.id)
        coalesced = any(job.coalesced for job in accepted.jobs)
        self.notify(
            "joined the sync already waiting" if coalesced else "sync queued", title=calendar.name
        )

    def action_confirm_deletes(self) -> None:
        calendar = self.selected()
        if calendar is None or calendar.status is not CalendarStatus.NEEDS_YOU:
            self.notify("nothing is held for this calendar")
            return
        names = {c.id: c.name for c in self.rows}
        lines = [
            f"{h.count} busy blocks in {names.get(h.target_calendar_id, h.target_calendar_id)}"
            for h in calendar.held
        ]
        text = (
            f"{calendar.name} suddenly returned far fewer events, so calsync held the deletes "
            "of its blocks:\n\n" + "\n".join(lines) + "\n\nDelete them now? If the events "
            "come back instead, the hold lifts by itself."
        )
        self.app.push_screen(
            ConfirmDialog("Held deletes", text, "Delete", danger=True),
            lambda yes: self._deletes_confirmed(calendar, yes),
        )

    def _deletes_confirmed(self, calendar: CalendarOut, confirmed: bool | None) -> None:
        if confirmed:
            self.confirm_deletes(calendar)

    @work(group="sync-now", exit_on_error=False)
    async def confirm_deletes(self, calendar: CalendarOut) -> None:
        self._replace(await self.host.api.confirm_deletes(calendar.id))
        self.notify("held deletes confirmed: syncing", title=calendar.name)

    def action_full_reconcile(self) -> None:
        syncing = [c for c in self.rows if c.sync_enabled]
        dialog = FullReconcileDialog(self.host.api, len(syncing), self.host.zone)
        self.app.push_screen(dialog, self._full_confirmed)

    def _full_confirmed(self, confirmed: bool | None) -> None:
        if confirmed:
            self.full_reconcile()

    @work(group="sync-now", exit_on_error=False)
    async def full_reconcile(self) -> None:
        accepted = await self.host.api.sync(full=True)
        self.notify(f"full reconcile queued for {len(accepted.jobs)} calendars")
