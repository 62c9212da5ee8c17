"""Overview: the counters, what needs the user, and the last hour's sync activity at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.widgets import DataTable, Sparkline, Static

from calsync_tui.client import ApiError
from calsync_tui.formatting import (
    STATUS_STYLE,
    ago,
    buckets,
    changes,
    has_changes,
    plain_row,
    until,
    when,
)
from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.stream import StreamBatch
from calsync_tui.tables import Row, replace_rows
from shared.domain import AccountState, CalendarStatus, ChannelState
from shared.schemas import AccountOut, CalendarOut, ChannelOut, Readiness, Status, SyncLogOut

# Warn this long before a login of a Google app in "Testing" ends (Google gives it 7 days).
TESTING_WARNING = timedelta(days=2)

WELCOME = """[b]Welcome to calsync.[/b]

calsync mirrors every busy moment of one calendar into all your other calendars as a private
"Busy" block, so nobody books you twice.

 • Add a Google account: press [b]2[/b] for Accounts, then [b]a[/b] (or run
   [b]calsync accounts add google[/b]).
 • Or try everything offline first: quit with [b]q[/b] and run [b]calsync demo[/b].
"""


@dataclass
class OverviewData:
    status: Status
    accounts: list[AccountOut]
    calendars: list[CalendarOut]
    channels: list[ChannelOut]
    logs: list[SyncLogOut]
    # The server's /readyz; None when it could not be read.
    readiness: Readiness | None = None


class Card(Static):
    """One counter with its name as the border title."""

    def __init__(self, title: str, id: str) -> None:
        super().__init__("-", id=id, classes="card")
        self.border_title = title


def _bullet(colour: str, *parts: str | tuple[str, str]) -> Content:
    """One line of "Needs you": a coloured dot, then text assembled, never read as markup."""
    return Content.assemble(("●", colour), " ", *parts)


class OverviewScreen(CalsyncScreen):
    MODE = "overview"

    def __init__(self) -> None:
        super().__init__()
        self.data: OverviewData | None = None

    def body(self) -> ComposeResult:
        with Vertical(id="overview"):
            with Grid(id="cards"):
                yield Card("Accounts", "card-accounts")
                yield Card("Calendars syncing", "card-calendars")
                yield Card("Busy blocks", "card-blocks")
                yield Card("Queue", "card-queue")
                yield Card("Last sync", "card-last")
                yield Card("Push channels", "card-channels")
            yield Static(WELCOME, id="welcome")
            with Horizontal(id="middle"):
                attention = Static("", id="attention")
                attention.border_title = "Needs you"
                yield attention
                with Vertical(id="activity"):
                    yield Static("syncs", classes="spark-label")
                    yield Sparkline([], id="spark-syncs")
                    yield Static("syncs with changes", classes="spark-label")
                    yield Sparkline([], id="spark-changes")
                    yield Static("", id="spark-axis", classes="spark-label")
            recent: DataTable[str | Text] = DataTable(
                id="recent", cursor_type="none", zebra_stripes=True
            )
            recent.border_title = "Recent syncs"
            yield recent

    def on_mount(self) -> None:
        self.query_one("#activity").border_title = "Activity, last hour"
        recent = self.query_one("#recent", DataTable)
        recent.add_columns("when", "calendar", "kind", "status", "changes", "notes")
        self.query_one("#welcome").display = False
        super().on_mount()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.data is not None:
            self._show_last_sync(self.data.status)

    def reload(self) -> None:
        self.load()

    def live(self, batch: StreamBatch) -> None:
        if batch.status is not None and self.data is not None:
            self.data.status = batch.status
            self.show(self.data)
        if batch.finished or batch.channels is not None or batch.hello:
            self.reload()

    @work(exclusive=True, group="overview", exit_on_error=False)
    async def load(self) -> None:
        api = self.host.api
        try:
            readiness: Readiness | None = await api.readiness()
        except ApiError:
            readiness = None
        if readiness is not None and not readiness.ready and self.data is not None:
            # Shown before the rest is read: with the database away, the rest fails.
            self.data.readiness = readiness
            self.show(self.data)
        status = await api.status()
        accounts = await api.accounts()
        calendars = await api.calendars()
        channels = await api.channels()
        logs = await api.sync_logs(limit=500)
        self.host.remember_calendars(calendars)
        self.data = OverviewData(status, accounts, calendars, channels, logs.items, readiness)
        self.show(self.data)

    def show(self, data: OverviewData) -> None:
        status = data.status
        self.query_one("#card-accounts", Static).update(f"[b]{status.accounts}[/b]")
        self.query_one("#card-calendars", Static).update(
            f"[b]{status.calendars_syncing}[/b] of {status.calendars}"
        )
        self.query_one("#card-blocks", Static).update(f"[b]{status.busy_blocks:,}[/b]")
        queue = "idle" if status.queue_depth == 0 else f"{status.queue_depth} waiting"
        self.query_one("#card-queue", Static).update(f"[b]{queue}[/b]")
        self._show_last_sync(status)
        counts = status.channels
        if not status.push_enabled:
            channels = "[yellow]off: polling[/yellow]"
        elif counts.failing:
            channels = f"[b]{counts.active}[/b] ok, [red]{counts.failing} failing[/red]"
        else:
            channels = f"[b]{counts.active}[/b] ok" + (
                f", {counts.expiring} renewing" if counts.expiring else ""
            )
        self.query_one("#card-channels", Static).update(channels)
        first_run = status.accounts == 0
        self.query_one("#welcome").display = first_run
        self.query_one("#middle").display = not first_run
        self.query_one("#recent").display = not first_run
        self.query_one("#attention", Static).update(self._attention(data))
        now = self.host.now()
        finished = [log.finished_at or log.started_at for log in data.logs]
        changed = [log.finished_at or log.started_at for log in data.logs if has_changes(log)]
        self.query_one("#spark-syncs", Sparkline).data = buckets(finished, now)
        self.query_one("#spark-changes", Sparkline).data = buckets(changed, now)
        total = sum(buckets(finished, now))
        self.query_one("#spark-axis", Static).update(
            f"60 min ago ··· now   ({total} sync{'s' if total != 1 else ''})"
        )
        self._show_recent(data.logs[:8])

    def _show_last_sync(self, status: Status) -> None:
        self.query_one("#card-last", Static).update(
            f"[b]{ago(status.last_sync_at, self.host.now())}[/b]"
        )

    def _attention(self, data: OverviewData) -> Content:
        # Assembled, not markup: names, emails and errors are the user's or the server's text.
        lines: list[Content] = []
        now = self.host.now()
        bold_a = ("a", "bold")
        readiness = data.readiness
        if readiness is not None and not readiness.ready:
            failing = "; ".join(f"{c.name}: {c.detail}" for c in readiness.checks if not c.ok)
            lines.append(
                _bullet("red", f"the server is not ready ({failing}): syncing waits for it.")
            )
        for account in data.accounts:
            if account.state == AccountState.NEEDS_REAUTH:
                lines.append(
                    _bullet(
                        "red",
                        f"{account.email} needs signing in again: its calendars are "
                        "paused (no block was deleted). Accounts → ",
                        bold_a,
                        ".",
                    )
                )
            elif (
                account.testing_login_expires_at is not None
                and account.testing_login_expires_at - now < TESTING_WARNING
            ):
                lines.append(
                    _bullet(
                        "yellow",
                        f"{account.email}: if your Google OAuth app is still in Testing, this "
                        f"login ends {until(account.testing_login_expires_at, now)} "
                        f"({when(account.testing_login_expires_at)}). Publish the app, or sign in "
                        "again (Accounts → ",
                        bold_a,
                        ").",
                    )
                )
        names = {c.id: c.name for c in data.calendars}
        for calendar in data.calendars:
            if calendar.status is CalendarStatus.NEEDS_YOU:
                held = ", ".join(
                    f"{h.count} in {names.get(h.target_calendar_id, h.target_calendar_id)}"
                    for h in calendar.held
                )
                lines.append(
                    _bullet(
                        "red",
                        f"{calendar.name} needs you: it suddenly returned far fewer events, so "
                        f"the deletes of its blocks are held ({held}). Calendars → ",
                        ("D", "bold"),
                        " to delete them; they stay if its events come back.",
                    )
                )
        for calendar in data.calendars:
            if calendar.sync_enabled and calendar.read_only and calendar.role.is_target:
                lines.append(
                    _bullet(
                        "yellow",
                        f"{calendar.name} is read-only: it can show its events in your other "
                        "calendars but cannot hold busy blocks.",
                    )
                )
        for channel in data.channels:
            if channel.state == ChannelState.FAILING:
                lines.append(
                    _bullet(
                        "red",
                        f"push for {channel.calendar_name} is failing "
                        f"({channel.failures} failures): calsync polls it meanwhile.",
                    )
                )
        if not data.status.push_enabled and data.status.calendars_syncing:
            lines.append(
                _bullet(
                    "dim",
                    "no public URL is set, so calendars are polled "
                    "(changes show within a minute, not seconds).",
                )
            )
        errors = [log for log in data.logs[:50] if log.error]
        if errors:
            log = errors[0]
            lines.append(
                _bullet(
                    "red",
                    f"the last failed sync ({self.host.calendar_name(log.calendar_id)}): "
                    f"{log.error}",
                )
            )
        if not lines:
            return _bullet("green", "Nothing: everything is in sync.")
        return Content("\n").join(lines)

    def _show_recent(self, logs: list[SyncLogOut]) -> None:
        table: DataTable[str | Text] = self.query_one("#recent", DataTable)
        now = self.host.now()
        rows: list[Row] = [
            (
                str(log.id),
                plain_row(
                    ago(log.finished_at or log.started_at, now),
                    self.host.calendar_name(log.calendar_id),
                    log.kind.value,
                    Text(log.status.value, style=STATUS_STYLE[log.status]),
                    changes(log),
                    "; ".join(log.notes),
                ),
            )
            for log in logs
        ]
        # Refilled only when a row reads differently, and measured as it is: cleared on every
        # live update, it was drawn cut to its headers whenever the screen refreshed first.
        replace_rows(table, rows)
