"""calsync's own calendar types: what every provider's mapping turns its wire format into.

Past a provider's mapping nothing reads Google JSON, Graph JSON or iCalendar text, and nothing
reads a status code: a provider says what happened as an `ErrorKind`. The types are plain
frozen dataclasses so that the pure planner can take them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

# -- times and events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventTime:
    """When an event starts or ends: a date (all-day, floating with its calendar) or an aware
    instant, with the zone the provider named (kept so a block shows in the source's zone)."""

    day: date | None = None
    instant: datetime | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        if (self.day is None) == (self.instant is None):
            raise ValueError("an event time is a date or an instant, exactly one")
        if self.instant is not None and self.instant.tzinfo is None:
            raise ValueError("an event time's instant must be aware")
        if isinstance(self.day, datetime):
            raise ValueError("an all-day event time is a date, not a datetime")

    @classmethod
    def at(cls, instant: datetime, zone: str | None = None) -> EventTime:
        return cls(instant=instant, zone=zone)

    @classmethod
    def on(cls, day: date) -> EventTime:
        return cls(day=day)

    @property
    def all_day(self) -> bool:
        return self.day is not None

    def to_utc(self, calendar_zone: str = "UTC") -> datetime:
        """The instant this time stands for; an all-day date is midnight in the calendar's zone."""
        if self.instant is not None:
            return self.instant.astimezone(UTC)
        assert self.day is not None
        return datetime.combine(self.day, time(0), ZoneInfo(calendar_zone)).astimezone(UTC)

    def same_time(self, other: EventTime) -> bool:
        """Whether both show the same moment (zones aside): how a block is judged unchanged."""
        if self.all_day or other.all_day:
            return self.day == other.day
        return self.to_utc() == other.to_utc()


class EventKind(StrEnum):
    """What kind of event it is, in calsync's words (domain.md "Which events block")."""

    DEFAULT = "default"
    OUT_OF_OFFICE = "out_of_office"
    FOCUS_TIME = "focus_time"
    WORKING_ELSEWHERE = "working_elsewhere"
    BIRTHDAY = "birthday"

    @property
    def blocks(self) -> bool:
        return self not in (EventKind.WORKING_ELSEWHERE, EventKind.BIRTHDAY)


class Response(StrEnum):
    """The calendar owner's own answer to an invitation (NONE: not an invitation to them)."""

    NONE = "none"
    NEEDS_ACTION = "needs_action"
    TENTATIVE = "tentative"
    ACCEPTED = "accepted"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class RemoteEvent:
    """One event instance as a provider holds it, in calsync's words.

    ``id`` names the instance in its calendar (for a recurring series, the occurrence);
    ``series_id`` the series it belongs to. ``version`` changes on every write (an etag or a
    change key): how calsync tells the echo of its own write from an edit. ``block_source`` is
    the source key of calsync's mark when the event is one of calsync's busy blocks.
    """

    id: str
    start: EventTime
    end: EventTime
    title: str = ""
    series_id: str | None = None
    version: str | None = None
    cancelled: bool = False
    busy: bool = True
    kind: EventKind = EventKind.DEFAULT
    response: Response = Response.NONE
    attendees: tuple[str, ...] = ()
    block_source: str | None = None
    updated: datetime | None = None
    # The feed cannot show the mark (Graph's delta), but the item carries what a block's
    # create does (a transactionId): calsync reads it before taking it for a person's event.
    maybe_block: bool = False

    @property
    def all_day(self) -> bool:
        return self.start.all_day

    @property
    def is_block(self) -> bool:
        return self.block_source is not None


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What one read of a calendar brought: changed instances, removed ids, and the series whose
    instances are replaced whole by those in ``events`` (CalDAV re-sends a whole series).

    ``cursor`` continues from here (stored only after the blocks it led to are committed);
    ``full`` says this was a full read: every instance of the window is in ``events``.
    """

    events: tuple[RemoteEvent, ...] = ()
    removed: tuple[str, ...] = ()
    series_replaced: tuple[str, ...] = ()
    cursor: str | None = None
    full: bool = False


@dataclass(frozen=True, slots=True)
class ProviderCalendar:
    """A calendar as the provider lists it."""

    id: str
    name: str
    time_zone: str | None = None
    color: str | None = None
    writable: bool = True
    primary: bool = False
    # The provider's own word for the account's rights ("owner", "reader"), shown to the user.
    access_role: str | None = None


# -- busy blocks -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockContent:
    """Everything calsync writes into a busy block; the provider adds its own private, opaque,
    no-reminder, no-attendee settings and its mark carrying ``source_key``."""

    title: str
    start: EventTime
    end: EventTime
    source_key: str


class BlockAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    READ = "read"


@dataclass(frozen=True, slots=True)
class BlockOp:
    """One write (or read) of one block in one calendar.

    ``block_id`` is calsync's chosen id on a create where the provider takes client ids, None
    where the provider assigns them; ``digest`` is the block's identity (a provider without
    client ids uses it as its idempotency key, Graph's transactionId). ``version`` makes an
    update or delete conditional (If-Match) where known.
    """

    action: BlockAction
    calendar_id: str
    block_id: str | None = None
    content: BlockContent | None = None
    digest: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class BlockResult:
    """What became of one operation: the block as the provider now holds it, or an error."""

    op: BlockOp
    block: RemoteEvent | None = None
    error: ProviderError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# -- errors ------------------------------------------------------------------------------------


class ErrorKind(StrEnum):
    """What a failure means to calsync; each provider's mapping decides which one it is."""

    TRANSIENT = "transient"  # retry with backoff (rate limits, 5xx, timeouts, dropped connections)
    AUTH = "auth"  # the login is refused and cannot be refreshed: needs_reauth
    GONE = "gone"  # the thing is not there (a delete of it has succeeded)
    EXISTS = "exists"  # a create met a block already there: read it, adopt it
    STALE = "stale"  # a conditional write met a newer version
    FORBIDDEN = "forbidden"  # no right to write here: the calendar is read-only
    CURSOR_EXPIRED = "cursor_expired"  # the incremental cursor is no longer valid: full read
    INVALID = "invalid"  # the provider refused the request itself (a bug, or bad data)


class ProviderError(Exception):
    """A provider's failure, classified; ``detail`` is the provider's own words for people.

    ``account_id`` names the calsync account whose provider failed, where the provider was
    built with it: a sync of one calendar writes into the user's other accounts too, and only
    the one whose login failed is marked needs_reauth.
    """

    account_id: int | None = None

    def __init__(
        self, kind: ErrorKind, detail: str = "", *, retry_after: float | None = None
    ) -> None:
        # Shown to people as it is (sync log, dashboard): the provider's own words.
        super().__init__(detail or kind.value)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


# -- what differs between providers ------------------------------------------------------------


class BlockIds(StrEnum):
    CLIENT = "client"  # calsync chooses the id (Google event ids, CalDAV UIDs and hrefs)
    SERVER = "server"  # the provider assigns it (Graph); calsync stores it the moment it is known


class PushKind(StrEnum):
    NONE = "none"  # polled by design (CalDAV), which is not a fault
    CHANNEL = "channel"  # Google: headers, a new channel before the old one stops
    SUBSCRIPTION = "subscription"  # Graph: JSON with a validation handshake, renewed in place


@dataclass(frozen=True, slots=True)
class Capabilities:
    block_ids: BlockIds
    push: PushKind
    push_lifetime: timedelta | None = None
    renew_in_place: bool = False
    batch_size: int = 1
    # Requests one account may have in flight at once (Graph: 4 per mailbox).
    max_concurrency: int = 1


@dataclass(frozen=True, slots=True)
class Subscription:
    """A push subscription (Google channel, Graph subscription) as the provider made it."""

    remote_id: str
    expires_at: datetime | None
    resource: str = ""


@dataclass(slots=True)
class CallStats:
    """What a provider did for one sync: counted calls (batch parts one each) and retries."""

    calls: int = 0
    requests: int = 0
    retries: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


class Provider(Protocol):
    """One account's connection to its provider. Blocking: call it from a worker thread."""

    capabilities: Capabilities
    stats: CallStats

    def list_calendars(self) -> list[ProviderCalendar]: ...

    def read_changes(
        self, calendar_id: str, *, cursor: str | None, window: tuple[datetime, datetime]
    ) -> ChangeSet:
        """Incremental from ``cursor`` when given, else every instance in the window.

        Raises ProviderError(CURSOR_EXPIRED) when the cursor is no longer valid.
        """
        ...

    def list_blocks(
        self, calendar_id: str, *, window: tuple[datetime, datetime]
    ) -> list[RemoteEvent]:
        """calsync's blocks in a calendar, found by the mark (never the title)."""
        ...

    def apply(self, ops: Sequence[BlockOp]) -> list[BlockResult]:
        """Run operations (batched as the provider allows, transient failures retried); one
        result per operation, in order."""
        ...

    def block_id(self, digest: str) -> str | None:
        """The id calsync chooses for a block of this identity, None where the provider
        assigns ids."""
        ...

    def close(self) -> None: ...


class PushProvider(Provider, Protocol):
    """A provider with push (capabilities.push is not NONE)."""

    def subscribe(
        self, calendar_id: str, *, address: str, secret: str, lifetime: timedelta
    ) -> Subscription: ...

    def renew(self, subscription: Subscription, *, lifetime: timedelta) -> Subscription:
        """Renew in place; raises ProviderError(GONE) when it is gone: make a new one."""
        ...

    def unsubscribe(self, subscription: Subscription) -> None: ...


# -- push notifications, as a provider's pure parser reads them -----------------------------------


class NoticeKind(StrEnum):
    OPENED = "opened"  # a channel's first message: says nothing about the calendar
    CHANGED = "changed"  # something in the calendar changed: sync it
    MISSED = "missed"  # the provider lost notifications: sync it
    REAUTHORIZE = "reauthorize"  # renew the subscription now
    REMOVED = "removed"  # the subscription is gone: make a new one, then sync


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification about one subscription; ``secret`` is checked against the stored one."""

    remote_id: str
    kind: NoticeKind
    secret: str | None = None
    # Google's message number (duplicates are ignored); None where the provider has none.
    sequence: int | None = None
    # What it watches, when the notice names it comparably (Google's resource id): checked
    # against the stored one; "" where the provider names nothing to compare.
    resource: str = ""
    # The provider's calendar id, when the notice says it (Google's resource URI): lets an
    # unknown subscription be stopped with that calendar's account.
    calendar: str = ""


@dataclass(frozen=True, slots=True)
class Handshake:
    """A subscription's validation request (Graph): answer ``token`` as text/plain at once."""

    token: str


@dataclass(frozen=True, slots=True)
class PushRequest:
    """A webhook request as a parser sees it: header names in lower case."""

    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class PushHeader:
    """A header a provider's notifications carry, as its parser checks it (for the API's
    document: the schema tests send what it describes)."""

    name: str
    longest: int
    required: bool = True
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class PushParser:
    """A provider's pure reader of its webhook requests. ``parse`` raises ValueError with a
    sentence saying what is wrong (answered 400)."""

    parse: Callable[[PushRequest], Handshake | list[Notice]]
    # The longest body a notification of this provider has (Google's are empty).
    max_body: int
    headers: tuple[PushHeader, ...] = ()
    # The answer a received notification gets (Google takes 200; Graph expects 202).
    accepted_status: int = 200
