"""What screens and dialogs may ask of the app (API, clock, state), without an import cycle."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Protocol

from calsync_tui.client import CalsyncApi
from calsync_tui.stream import ConnectionState
from shared.schemas import CalendarOut, Status, SyncProgressOut


class DashboardHost(Protocol):
    api: CalsyncApi
    connection: ConnectionState
    connection_reason: str
    status: Status | None
    calendars: dict[int, CalendarOut]
    zone: tzinfo
    progress: dict[int, SyncProgressOut]

    def now(self) -> datetime: ...

    def calendar_name(self, calendar_id: int) -> str: ...

    def remember_calendars(self, calendars: list[CalendarOut]) -> None: ...
