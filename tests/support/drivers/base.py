"""What a provider driver offers the contract suite and the engine and server tiers.

A driver acts as the person (and, for faults, as the provider's bad day) through the provider's
own protocol or its emulator's admin API, never through calsync's provider code: so a test can
check calsync's view against what the provider really holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from calsync_server.providers.credentials import StoredCredentials
from calsync_server.providers.model import ErrorKind, Provider


@dataclass(frozen=True, slots=True)
class PersonEvent:
    """An event as the person makes it; times are aware instants, or dates when all-day."""

    title: str
    start: datetime | date
    end: datetime | date
    free: bool = False
    cancelled: bool = False
    declined: bool = False
    # The person's own answer is "tentative" (an invitation from someone else).
    tentative: bool = False
    # Other people invited (addresses): an invitation from someone else, with these attendees.
    attendees: tuple[str, ...] = ()
    # An RRULE such as "FREQ=DAILY;COUNT=3", for a recurring series.
    recurrence: str | None = None


@dataclass(frozen=True, slots=True)
class Login:
    """How calsync connects the account holding a calendar: the provider's name (as
    ``Account.provider``), the account's address and its stored login."""

    provider: str
    email: str
    credentials: StoredCredentials


class Driver(Protocol):
    """One provider account of one person, and the provider it lives in."""

    name: str  # "google", "microsoft", "caldav"

    def provider(self, *, sleep: Callable[[float], None] = time.sleep) -> Provider:
        """calsync's provider for this account (a new one each call; the caller closes it);
        its retries wait with ``sleep`` (a test records the waits instead of taking them)."""
        ...

    def new_calendar(self, name: str, *, read_only: bool = False) -> str:
        """A new empty calendar of the account; its provider calendar id."""
        ...

    def login(self, calendar_id: str) -> Login:
        """The login of the account that holds the calendar, as a sign-in would store it."""
        ...

    def add(self, calendar_id: str, event: PersonEvent) -> str:
        """Create an event as the person would; the id of the event (the series for a recurring
        one), as the provider names it."""
        ...

    def move(self, calendar_id: str, event_id: str, start: datetime, end: datetime) -> None: ...

    def retitle(self, calendar_id: str, event_id: str, title: str) -> None: ...

    def delete(self, calendar_id: str, event_id: str) -> None: ...

    def cancel_occurrence(self, calendar_id: str, series_id: str, start: datetime) -> None:
        """Cancel the occurrence of a series that starts at ``start``."""
        ...

    def move_occurrence(
        self,
        calendar_id: str,
        series_id: str,
        start: datetime,
        new_start: datetime,
        new_end: datetime,
    ) -> None:
        """Move only the occurrence of a series that starts at ``start`` (an exception)."""
        ...

    def events(self, calendar_id: str) -> list[dict[str, object]]:
        """What the calendar holds now, read through the provider's protocol directly: each a
        dict with at least "id" (for ``delete``), "title", "start", "end" (aware datetimes or
        dates) and "mark" (the calsync source key, or None)."""
        ...

    def expire_cursor(self, calendar_id: str) -> None:
        """Make the provider refuse every incremental cursor of the calendar issued so far."""
        ...

    def fail_next(self, kind: ErrorKind, *, times: int = 1, retry_after: float = 0) -> None:
        """The provider's next ``times`` requests fail as ``kind`` (TRANSIENT: a 429 or 503 with
        ``retry_after``)."""
        ...

    def refuse_login(self) -> None:
        """The account's login stops working (revoked token, changed password)."""
        ...
