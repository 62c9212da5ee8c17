"""The dashboard app: its screens, the live stream, toasts, and the command palette's entries."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from calsync_tui.client import CalsyncApi
from calsync_tui.formatting import changes, has_changes
from calsync_tui.screens.accounts import AccountsScreen
from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.screens.busy_blocks import BusyBlocksScreen
from calsync_tui.screens.calendars import CalendarsScreen
from calsync_tui.screens.channels import ChannelsScreen
from calsync_tui.screens.overview import OverviewScreen
from calsync_tui.screens.sync_log import SyncLogScreen
from calsync_tui.screens.week import WeekScreen
from calsync_tui.stream import ConnectionState, StreamBatch, StreamFollower
from calsync_tui.widgets.header import SCREENS
from shared.clock import Clock, SystemClock
from shared.domain import SyncStatus
from shared.schemas import CalendarOut, Status, SyncProgressOut

DESCRIPTIONS = {
    "overview": "Counters, what needs you, the last hour's activity",
    "accounts": "Connected accounts: add or disconnect",
    "calendars": "Turn sync on or off, roles, privacy, sync now",
    "busy_blocks": "Every busy block calsync keeps, filtered by calendar",
    "sync_log": "Every sync, newest first, with its counts and notes",
    "channels": "Push-channel health and polling fallback",
    "week": "The week as a picture: your events and calsync's blocks, calendar by calendar",
}


class CalsyncApp(App[None]):
    """The dashboard. Everything it shows comes from `api` and its live stream."""

    TITLE = "calsync"
    CSS_PATH = "calsync.tcss"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "overview": OverviewScreen,
        "accounts": AccountsScreen,
        "calendars": CalendarsScreen,
        "busy_blocks": BusyBlocksScreen,
        "sync_log": SyncLogScreen,
        "channels": ChannelsScreen,
        "week": WeekScreen,
    }
    DEFAULT_MODE = "overview"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"show('{mode}')", label, show=False) for key, mode, label in SCREENS),
        Binding("q", "quit", "Quit", priority=False),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
    ]

    def __init__(
        self,
        api: CalsyncApi,
        *,
        clock: Clock | None = None,
        follow_stream: bool = True,
        zone: tzinfo | None = None,
        mode: str | None = None,
    ) -> None:
        super().__init__()
        self.api = api
        self.clock = clock or SystemClock()
        # The zone times are drawn in (the week view): this machine's unless told.
        self.zone: tzinfo = zone or datetime.now().astimezone().tzinfo or UTC
        self.start_mode = mode
        self.follow_stream = follow_stream
        self.connection = ConnectionState.CONNECTING
        self.connection_reason = ""
        self.status: Status | None = None
        self.calendars: dict[int, CalendarOut] = {}
        # Running syncs' progress by calendar, from the stream; a finished sync leaves it.
        self.progress: dict[int, SyncProgressOut] = {}
        self.batches = 0  # live batches received (tests wait on it)

    # -- what screens ask for --------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def calendar_name(self, calendar_id: int) -> str:
        calendar = self.calendars.get(calendar_id)
        return calendar.name if calendar else f"#{calendar_id}"

    def remember_calendars(self, calendars: list[CalendarOut]) -> None:
        for calendar in calendars:
            self.calendars[calendar.id] = calendar

    # -- lifecycle --------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.start_mode is not None:
            self.action_show(self.start_mode)
        if self.follow_stream:
            self.follow()

    async def on_unmount(self) -> None:
        await self.api.aclose()

    @work(exclusive=True, group="stream", exit_on_error=False)
    async def follow(self) -> None:
        follower = StreamFollower(
            self.api.base_url, self.api.token, on_state=self._connection, on_batch=self._batch
        )
        await follower.run()

    def _connection(self, state: ConnectionState, reason: str) -> None:
        lost = self.connection is ConnectionState.LIVE and state is ConnectionState.RECONNECTING
        self.connection, self.connection_reason = state, reason
        if lost:
            self.notify(reason, title="Lost the live connection", severity="warning", markup=False)
        screen = self.screen
        if isinstance(screen, CalsyncScreen):
            screen.connection_changed(state)

    def _batch(self, batch: StreamBatch) -> None:
        self.batches += 1
        if batch.status is not None:
            self.status = batch.status
        self._toasts(batch)
        progressed = bool(batch.progress or batch.finished)
        self.progress.update(batch.progress)
        for log in batch.finished:
            self.progress.pop(log.calendar_id, None)
        for screen in self.screen_stack:
            if isinstance(screen, CalsyncScreen):
                screen.live(batch)
                if progressed:
                    screen.progress_changed()

    def _toasts(self, batch: StreamBatch) -> None:
        failed = [log for log in batch.finished if log.status == SyncStatus.ERROR or log.error]
        for log in failed[:3]:
            self.notify(
                log.error or "the sync failed",
                title=f"Sync of {self.calendar_name(log.calendar_id)} failed",
                severity="error",
                timeout=10,
                markup=False,  # the server's words, which may hold "[" (a title, a name)
            )
        changed = [log for log in batch.finished if has_changes(log) and log not in failed]
        if len(changed) == 1:
            log = changed[0]
            self.notify(
                changes(log), title=f"{self.calendar_name(log.calendar_id)} synced", markup=False
            )
        elif changed:
            created = sum(log.blocks_created for log in changed)
            updated = sum(log.blocks_updated for log in changed)
            deleted = sum(log.blocks_deleted for log in changed)
            self.notify(
                f"+{created} ~{updated} -{deleted} blocks",
                title=f"{len(changed)} calendars synced",
            )

    # -- navigation -------------------------------------------------------------------------------

    def action_show(self, mode: str) -> None:
        if mode in self.MODES and self.current_mode != mode:
            self.switch_mode(mode)

    def action_refresh(self) -> None:
        screen = self.screen
        if isinstance(screen, CalsyncScreen):
            screen.reload()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for key, mode, label in SCREENS:
            yield SystemCommand(
                f"{label} ({key})", DESCRIPTIONS[mode], lambda mode=mode: self.action_show(mode)
            )
        yield SystemCommand("Refresh", "Fetch this screen's data again", self.action_refresh)
        yield from super().get_system_commands(screen)
