"""The Google emulator's calendars and who may read or write them (their ACL), with the clock,
etags and change listeners every part of the store uses."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from calsync_server.emulators.google import errors
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.store.model import (
    PALETTE,
    WRITE_ROLES,
    Calendar,
    ChangeListener,
    Resource,
)


class CalendarStore:
    """All emulator state is guarded by one lock: each operation is short and in memory.
    This layer holds the calendars; the layers above add accounts, events, lists and writes."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.calendars: dict[str, Calendar] = {}
        self._etags = itertools.count(3_400_000_000_000_000 + int(time.time() * 1000) * 10)
        self._colors = itertools.count()
        self.listeners: list[ChangeListener] = []

    def now(self) -> datetime:
        return datetime.now(UTC)

    def _etag(self) -> str:
        return f'"{next(self._etags)}"'

    def _notify(self, calendar_ids: Iterable[str]) -> None:
        for calendar_id in dict.fromkeys(calendar_ids):
            for listener in list(self.listeners):
                listener(calendar_id)

    def _new_calendar(self, calendar_id: str, summary: str, time_zone: str) -> Calendar:
        calendar = Calendar(calendar_id, summary, time_zone, next(self._colors) % len(PALETTE))
        calendar.etag = self._etag()
        self.calendars[calendar_id] = calendar
        return calendar

    def resolve_calendar(
        self, email: str, calendar_id: str, *, write: bool = False
    ) -> tuple[Calendar, str]:
        if calendar_id == "primary":
            calendar_id = email
        calendar = self.calendars.get(calendar_id)
        role = calendar.acl.get(email) if calendar else None
        if calendar is None or role is None:
            raise errors.not_found()
        if write and role not in WRITE_ROLES:
            raise errors.writer_access_required()
        return calendar, role

    def calendar_list(self, email: str) -> list[tuple[Calendar, str]]:
        with self.lock:
            # Primary first, then in creation order, as the Google UI lists them.
            found = [(c, c.acl[email]) for c in self.calendars.values() if email in c.acl]
            return sorted(found, key=lambda pair: pair[0].id != email)

    def calendar_list_entry(self, calendar: Calendar, role: str, email: str) -> Resource:
        entry: Resource = {
            "kind": "calendar#calendarListEntry",
            "etag": calendar.etag,
            "id": calendar.id,
            "summary": calendar.summary,
            "timeZone": calendar.time_zone,
            "colorId": str(calendar.color_index + 1),
            "backgroundColor": PALETTE[calendar.color_index],
            "foregroundColor": "#000000",
            "selected": True,
            "accessRole": role,
            "defaultReminders": [],
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }
        if calendar.description:
            entry["description"] = calendar.description
        if calendar.id == email:
            entry["primary"] = True
            entry["defaultReminders"] = [{"method": "popup", "minutes": 10}]
        return entry

    def calendar_resource(self, calendar: Calendar) -> Resource:
        return {
            "kind": "calendar#calendar",
            "etag": calendar.etag,
            "id": calendar.id,
            "summary": calendar.summary,
            "timeZone": calendar.time_zone,
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }

    def _writable(self, email: str, calendar_id: str, trusted: bool) -> Calendar:
        """The calendar `email` may write to; trusted callers (admin, scenario) may write to
        any calendar, as the owner of a read-only shared calendar would."""
        if trusted:
            calendar = self.calendars.get(email if calendar_id == "primary" else calendar_id)
            if calendar is None:
                raise errors.not_found()
            return calendar
        return self.resolve_calendar(email, calendar_id, write=True)[0]

    def expire_sync_tokens(self, calendar_id: str) -> None:
        with self.lock:
            calendar = self.calendars.get(calendar_id)
            if calendar is None:
                raise errors.not_found()
            calendar.generation += 1
