"""The Graph emulator's calendars (whose, editable or not, cursor expiry), with the clock and
change listeners every part of the store uses."""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.store.model import (
    COLORS,
    AuthCode,
    CalendarRecord,
    Change,
    ChangeListener,
    IssuedToken,
    Mailbox,
    Resource,
    b64,
)


class CalendarStore:
    """All Graph emulator state is behind one lock: each operation is short and in memory.
    This layer holds the calendars; the layers above add mailboxes, events and writes."""

    def __init__(self, config: GraphEmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.mailboxes: dict[str, Mailbox] = {}  # by oid
        self.by_email: dict[str, str] = {}
        self.calendars: dict[str, CalendarRecord] = {}
        self.access_tokens: dict[str, IssuedToken] = {}
        self.refresh_tokens: dict[str, IssuedToken] = {}
        self.revoked_refresh_tokens: set[str] = set()
        self.auth_codes: dict[str, AuthCode] = {}
        # Either spelling of an event id -> (calendar id, immutable id).
        self.event_index: dict[str, tuple[str, str]] = {}
        # The REST spelling of ids that are gone, for `@removed` entries in either spelling.
        self.gone: dict[str, str] = {}
        self._seq = itertools.count(1)
        self._colors = itertools.count()
        self.listeners: list[ChangeListener] = []

    def now(self) -> datetime:
        return self.config.clock.now()

    def _notify(self, changes: Iterable[Change]) -> None:
        for change in changes:
            for listener in list(self.listeners):
                listener(change)

    def _new_calendar(
        self, mailbox: Mailbox, name: str, is_default: bool, can_edit: bool, color: Any
    ) -> CalendarRecord:
        index = next(self._colors) % len(COLORS)
        chosen = COLORS[index]
        if isinstance(color, str):
            chosen = next((c for c in COLORS if c[0] == color), chosen)
        calendar = CalendarRecord(
            id="AAMkAG" + b64(secrets.token_bytes(30)) + "AAA=",
            owner=mailbox.oid,
            name=name,
            color=chosen[0],
            hex_color=chosen[1],
            is_default=is_default,
            can_edit=can_edit,
            change_key=b64(secrets.token_bytes(12)),
        )
        self.calendars[calendar.id] = calendar
        mailbox.calendars.append(calendar.id)
        return calendar

    def add_calendar(self, mailbox: Mailbox, name: str, *, can_edit: bool) -> CalendarRecord:
        """One more calendar of the mailbox: made by its owner (POST /me/calendars), or shared
        into it by someone else, read-only when `can_edit` is false (admin API)."""
        with self.lock:
            return self._new_calendar(mailbox, name, False, can_edit, None)

    def calendar(self, mailbox: Mailbox, calendar_id: str | None) -> CalendarRecord:
        """One of the mailbox's calendars; None means the default one."""
        with self.lock:
            key = calendar_id or mailbox.default_calendar
            calendar = self.calendars.get(key)
            if calendar is None or key not in mailbox.calendars:
                raise errors.item_not_found()
            return calendar

    def calendar_resource(self, mailbox: Mailbox, calendar: CalendarRecord) -> Resource:
        return {
            "@odata.etag": f'W/"{calendar.change_key}"',
            "id": calendar.id,
            "name": calendar.name,
            "color": calendar.color,
            "hexColor": calendar.hex_color,
            "isDefaultCalendar": calendar.is_default,
            "changeKey": calendar.change_key,
            "canShare": calendar.can_edit,
            "canViewPrivateItems": True,
            "canEdit": calendar.can_edit,
            "isRemovable": not calendar.is_default,
            "isTallyingResponses": True,
            "allowedOnlineMeetingProviders": ["teamsForBusiness"],
            "defaultOnlineMeetingProvider": "teamsForBusiness",
            "owner": {"name": mailbox.name, "address": mailbox.email},
        }

    def expire_cursors(self, calendar_id: str, status: int) -> None:
        with self.lock:
            calendar = self.calendars.get(calendar_id)
            if calendar is None:
                raise errors.item_not_found()
            calendar.generation += 1
            calendar.expire_status = status
