"""The Google emulator's stored shapes: accounts, calendars, events, list queries, cursors."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from calsync_server.emulators.google.recurrence import EventTime, Series

Resource = dict[str, Any]

# Google's own calendar palette; calendarList entries carry one of these.
PALETTE = (
    "#ac725e", "#d06b64", "#f83a22", "#fa573c", "#ff7537", "#ffad46", "#42d692", "#16a765",
    "#7bd148", "#b3dc6c", "#fbe983", "#fad165", "#92e1c0", "#9fe1e7", "#9fc6e7", "#4986e7",
    "#9a9cff", "#b99aff", "#c2c2c2", "#cabdbf", "#cca6ac", "#f691b2", "#cd74e6", "#a47ae2",
)  # fmt: skip

EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
INSTANCE_ID = re.compile(r"^(?P<master>.+)_(?P<suffix>\d{8}(?:T\d{6}Z)?)$")
EVENT_TYPES = ("default", "outOfOffice", "focusTime", "workingLocation", "birthday", "fromGmail")
WRITE_ROLES = ("owner", "writer")
# Fields a client may not set: the server owns them.
SERVER_FIELDS = ("kind", "etag", "id", "htmlLink", "created", "updated", "creator")
# Object fields that a PATCH replaces whole instead of merging: mixing `date` and `dateTime`
# from old and new values would make a nonsense time.
PATCH_REPLACES = ("start", "end", "originalStartTime")
# Page cursors kept for clients paging through a list; old ones are forgotten.
MAX_CURSORS = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def base32hex_id() -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuv"
    return "".join(secrets.choice(alphabet) for _ in range(26))


@dataclass
class Account:
    email: str
    name: str
    time_zone: str
    # What the consent grants, as Google's token answer spells it; None: what was asked for.
    # Set through the admin API to play a user who unticks a permission, or a wider grant.
    granted_scope: str | None = None


@dataclass
class StoredEvent:
    """One event as stored. `resource` is never mutated once stored: every write stores a new
    dict, so lists already handed out (page cursors) stay consistent."""

    resource: Resource
    seq: int
    start: EventTime
    end: EventTime
    series: Series | None
    # When it was last written; for updatedMin and orderBy=updated.
    updated_at: datetime = EPOCH

    @property
    def id(self) -> str:
        return str(self.resource["id"])

    @property
    def cancelled(self) -> bool:
        return self.resource.get("status") == "cancelled"

    @property
    def master_id(self) -> str | None:
        value = self.resource.get("recurringEventId")
        return str(value) if value else None


@dataclass
class Calendar:
    id: str
    summary: str
    time_zone: str
    color_index: int
    description: str = ""
    acl: dict[str, str] = field(default_factory=dict)
    events: dict[str, StoredEvent] = field(default_factory=dict)
    # master id -> ids of its stored exceptions (moved, changed or cancelled instances)
    exceptions: dict[str, set[str]] = field(default_factory=dict)
    seq: int = 0
    # Change log for incremental sync: parallel lists, seqs ascending, so a token finds its
    # place by bisection and reads only what changed since.
    log_seqs: list[int] = field(default_factory=list)
    log_ids: list[str] = field(default_factory=list)
    # Bumped by the admin API: tokens from an older generation answer 410.
    generation: int = 0
    etag: str = ""


@dataclass(frozen=True)
class Window:
    time_min: datetime | None
    time_max: datetime | None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        # timeMin bounds the end and timeMax the start, both exclusive.
        if self.time_min is not None and end <= self.time_min:
            return False
        return not (self.time_max is not None and start >= self.time_max)


@dataclass(frozen=True)
class ListQuery:
    """events.list parameters, already validated by the API layer."""

    single_events: bool = False
    show_deleted: bool = False
    window: Window = Window(None, None)
    event_types: tuple[str, ...] | None = None
    private_properties: tuple[tuple[str, str], ...] = ()
    shared_properties: tuple[tuple[str, str], ...] = ()
    q: str | None = None
    ical_uid: str | None = None
    updated_min: datetime | None = None
    order_by: str | None = None
    max_results: int = 250
    page_token: str | None = None
    sync_token: str | None = None


@dataclass(frozen=True)
class SyncState:
    """What a sync token remembers: where in the change log it stands and the query it came
    from, so the incremental list answers the same question."""

    calendar_id: str
    seq: int
    generation: int
    single_events: bool
    window: Window
    event_types: tuple[str, ...] | None


@dataclass
class PageCursor:
    calendar_id: str
    items: list[Resource]
    offset: int
    # None for lists that never end in a sync token (events.instances).
    sync: SyncState | None


@dataclass
class AccessToken:
    email: str
    expires_at: float
    refresh_token: str | None


@dataclass
class AuthCode:
    email: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None


ChangeListener = Callable[[str], None]


def public_copy(resource: Resource) -> Resource:
    """A copy to hand out, so a caller cannot change what is stored."""
    return dict(resource)
