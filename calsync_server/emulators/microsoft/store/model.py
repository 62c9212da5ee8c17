"""The Graph emulator's stored shapes: mailboxes, tokens, calendars, events, views of them,
changes; and Graph's ids and timestamps."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from calsync_server.emulators.microsoft import errors

Resource = dict[str, Any]

# Outlook's calendar colours: the name Graph gives and the hex it shows it as.
COLORS = (
    ("lightBlue", "#6FA8DC"),
    ("lightGreen", "#93C47D"),
    ("lightOrange", "#F6B26B"),
    ("lightGray", "#B7B7B7"),
    ("lightYellow", "#FFD966"),
    ("lightTeal", "#76A5AF"),
    ("lightPink", "#D5A6BD"),
    ("lightBrown", "#C27C0E"),
    ("lightRed", "#E06666"),
)
NULL_TIME = "0001-01-01T00:00:00Z"
OCCURRENCE_PREFIX = "AAMkOc"
MAX_WINDOW_DAYS = 1825


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def new_ids() -> tuple[str, str]:
    """An event's immutable id and its REST id: two opaque spellings of one item, as Graph
    hands out one or the other depending on `Prefer: IdType`."""
    raw = secrets.token_bytes(33)
    return "AAkALg" + b64(raw), "AAMkAG" + b64(raw[::-1])


def occurrence_id(master_id: str, original: datetime) -> str:
    stamp = original.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return OCCURRENCE_PREFIX + b64(f"{master_id}|{stamp}".encode())


def parse_occurrence_id(value: str) -> tuple[str, datetime] | None:
    if not value.startswith(OCCURRENCE_PREFIX):
        return None
    try:
        master_id, stamp = (
            base64.urlsafe_b64decode(value[len(OCCURRENCE_PREFIX) :]).decode().split("|")
        )
        return master_id, datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except (ValueError, UnicodeDecodeError):
        return None


def graph_time(moment: datetime) -> str:
    """Graph's timestamps: UTC with seven fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_query_time(value: str, name: str) -> datetime:
    """A `startDateTime`/`endDateTime` query value; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.bad_request(
            f"The parameter '{name}' does not have a valid value.", "ErrorInvalidParameter"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_window(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    if not start or not end:
        raise errors.window_required()
    begin, finish = parse_query_time(start, "startDateTime"), parse_query_time(end, "endDateTime")
    if finish <= begin or finish - begin > timedelta(days=MAX_WINDOW_DAYS):
        raise errors.bad_request(
            "The time window must end after it starts and span at most 1825 days.",
            "ErrorInvalidParameter",
        )
    return begin, finish


@dataclass
class Mailbox:
    oid: str
    tenant_id: str
    email: str
    name: str
    time_zone: str  # a Windows name, as mailboxSettings gives it
    default_calendar: str = ""
    calendars: list[str] = field(default_factory=list)


@dataclass
class IssuedToken:
    oid: str
    expires_at: datetime


@dataclass
class AuthCode:
    oid: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    expires_at: datetime


@dataclass
class EventRecord:
    """A stored event: a single instance, a series master or an exception of a series."""

    id: str  # the immutable id; `rest_id` is the other spelling
    rest_id: str
    calendar_id: str
    fields: Resource
    start: datetime  # aware, UTC
    end: datetime
    start_zone: str
    end_zone: str
    is_all_day: bool
    kind: str  # singleInstance | seriesMaster | exception
    created: datetime
    modified: datetime
    change_key: str
    seq: int
    recurrence: Resource | None = None
    series_master_id: str | None = None  # immutable id of the master, for exceptions
    original_start: datetime | None = None
    # A master's deleted occurrences and its exceptions, by original start (UTC).
    cancelled_starts: set[datetime] = field(default_factory=set)
    exceptions: dict[datetime, str] = field(default_factory=dict)
    is_cancelled: bool = False
    is_organizer: bool = True
    response: str = "organizer"
    response_time: str = NULL_TIME
    organizer: Resource | None = None
    extended: dict[str, str] = field(default_factory=dict)
    transaction_id: str | None = None
    ical_uid: str = ""


@dataclass(frozen=True)
class Item:
    """What a view shows: a stored event, or an occurrence computed from its master."""

    id: str  # immutable id (occurrences: computed from the master's immutable id)
    rest_id: str
    kind: str  # singleInstance | seriesMaster | occurrence | exception
    start: datetime
    end: datetime
    record: EventRecord  # the event itself, or the master of an occurrence
    original_start: datetime | None = None

    @property
    def version(self) -> int:
        return self.record.seq


@dataclass
class CalendarRecord:
    id: str
    owner: str  # oid
    name: str
    color: str
    hex_color: str
    is_default: bool
    can_edit: bool
    change_key: str
    events: dict[str, EventRecord] = field(default_factory=dict)
    # Changed event ids in order, for "changes outside the window arrive as removed".
    log: list[tuple[int, str]] = field(default_factory=list)
    # Bumped by the admin API: delta cursors from an older generation are gone.
    generation: int = 0
    expire_status: int = 410
    transactions: dict[str, tuple[str, datetime]] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One change of one event, for subscriptions."""

    owner: str
    calendar_id: str
    event_id: str  # immutable
    rest_id: str
    change_key: str
    change_type: str  # created | updated | deleted

    @staticmethod
    def of(owner: str, record: EventRecord, change_type: str) -> Change:
        return Change(
            owner, record.calendar_id, record.id, record.rest_id, record.change_key, change_type
        )


ChangeListener = Callable[[Change], None]


def item_of(record: EventRecord) -> Item:
    """What a view shows of a stored event."""
    return Item(
        record.id,
        record.rest_id,
        record.kind,
        record.start,
        record.end,
        record,
        record.original_start,
    )
