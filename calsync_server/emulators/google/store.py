"""The emulator's memory: accounts, tokens, calendars, events, change logs and sync tokens."""

from __future__ import annotations

import bisect
import itertools
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from calsync_server.emulators.google import errors
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.recurrence import (
    EventTime,
    Series,
    format_timestamp,
    instance_suffix,
    parse_event_time,
    parse_series,
    time_field,
)

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


def _base32hex_id() -> str:
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


class Store:
    """All emulator state, guarded by one lock: each operation is short and in memory."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.calendars: dict[str, Calendar] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self._sync_tokens: dict[str, SyncState] = {}
        self._cursors: OrderedDict[str, PageCursor] = OrderedDict()
        self._etags = itertools.count(3_400_000_000_000_000 + int(time.time() * 1000) * 10)
        self._colors = itertools.count()
        self.listeners: list[ChangeListener] = []

    # ----------------------------------------------------------------- clock and identifiers

    def now(self) -> datetime:
        return datetime.now(UTC)

    def _etag(self) -> str:
        return f'"{next(self._etags)}"'

    def _notify(self, calendar_ids: Iterable[str]) -> None:
        for calendar_id in dict.fromkeys(calendar_ids):
            for listener in list(self.listeners):
                listener(calendar_id)

    # ----------------------------------------------------------------------- accounts, tokens

    def create_account(
        self,
        email: str,
        name: str | None,
        time_zone: str,
        calendars: list[dict[str, Any]],
    ) -> tuple[Account, str, str, list[Calendar]]:
        with self.lock:
            if email in self.accounts:
                raise errors.GoogleError(409, "duplicate", f"Account {email} already exists.")
            account = Account(email, name or email.split("@")[0], time_zone)
            self.accounts[email] = account
            primary = self.calendars.get(email)
            if primary is None:
                primary = self._new_calendar(email, email, time_zone)
            primary.acl[email] = "owner"
            made = [primary]
            for spec in calendars:
                role = spec.get("access_role") or "owner"
                calendar_id = spec.get("id") or f"{_base32hex_id()}@group.calendar.google.com"
                calendar = self.calendars.get(calendar_id)
                if calendar is None:
                    calendar = self._new_calendar(
                        calendar_id, spec["summary"], spec.get("time_zone") or time_zone
                    )
                calendar.acl[email] = role
                made.append(calendar)
            refresh = self._new_refresh_token(email)
            access = self.issue_access_token(email, refresh)
            return account, access, refresh, made

    def _new_calendar(self, calendar_id: str, summary: str, time_zone: str) -> Calendar:
        calendar = Calendar(calendar_id, summary, time_zone, next(self._colors) % len(PALETTE))
        calendar.etag = self._etag()
        self.calendars[calendar_id] = calendar
        return calendar

    def _new_refresh_token(self, email: str) -> str:
        token = "1//" + secrets.token_urlsafe(48)
        self.refresh_tokens[token] = email
        return token

    def issue_access_token(self, email: str, refresh_token: str | None) -> str:
        with self.lock:
            token = "ya29." + secrets.token_urlsafe(64)
            self.access_tokens[token] = AccessToken(
                email, time.monotonic() + self.config.access_token_lifetime_s, refresh_token
            )
            return token

    def authenticate(self, authorization: str | None) -> str:
        """The account an `Authorization: Bearer` header speaks for, or Google's 401."""
        if not authorization:
            raise errors.login_required()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.invalid_credentials()
        with self.lock:
            entry = self.access_tokens.get(token.strip())
            if entry is None or entry.email not in self.accounts:
                raise errors.invalid_credentials()
            if entry.expires_at <= time.monotonic():
                del self.access_tokens[token.strip()]
                raise errors.invalid_credentials()
            return entry.email

    def new_auth_code(self, code: AuthCode) -> str:
        with self.lock:
            value = "4/" + secrets.token_urlsafe(32)
            self.auth_codes[value] = code
            return value

    def redeem_code(self, code: str) -> AuthCode | None:
        with self.lock:
            return self.auth_codes.pop(code, None)

    def new_grant(self, email: str) -> tuple[str, str]:
        """A fresh refresh token and an access token tied to it, for the code exchange."""
        with self.lock:
            refresh = self._new_refresh_token(email)
            return self.issue_access_token(email, refresh), refresh

    def revoke(self, token: str) -> bool:
        with self.lock:
            if token in self.refresh_tokens:
                del self.refresh_tokens[token]
                # Revoking a grant kills every access token minted from it, as Google does.
                for key in [k for k, v in self.access_tokens.items() if v.refresh_token == token]:
                    del self.access_tokens[key]
                return True
            return self.access_tokens.pop(token, None) is not None

    # -------------------------------------------------------------------------- calendars

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

    # ------------------------------------------------------------------------ event views

    def _horizon(self) -> datetime:
        return self.now() + timedelta(days=self.config.expansion_horizon_days)

    @staticmethod
    def _cancelled_view(resource: Resource) -> Resource:
        """What a list shows of a deleted item: Google guarantees only these fields."""
        view: Resource = {
            "kind": "calendar#event",
            "etag": resource.get("etag"),
            "id": resource["id"],
            "status": "cancelled",
        }
        if resource.get("recurringEventId"):
            view["recurringEventId"] = resource["recurringEventId"]
            view["originalStartTime"] = resource["originalStartTime"]
        return view

    def _instance(self, master: StoredEvent, original: datetime) -> StoredEvent:
        """A generated (unstored) instance of `master` starting at `original`."""
        series = master.series
        assert series is not None
        tz = series.tz
        iid = f"{master.id}_{instance_suffix(original, series.all_day, tz)}"
        resource = {k: v for k, v in master.resource.items() if k != "recurrence"}
        end = original + series.duration
        if series.all_day:
            # All-day durations are whole days in local time, whatever DST does.
            end = (original.astimezone(tz) + series.duration).astimezone(UTC)
        start_field = time_field(original, series.all_day, tz)
        resource.update(
            id=iid,
            recurringEventId=master.id,
            originalStartTime=start_field,
            start=start_field,
            end=time_field(end, series.all_day, tz),
        )
        return StoredEvent(
            resource,
            master.seq,
            EventTime(original, series.all_day, tz),
            EventTime(end, series.all_day, tz),
            None,
            master.updated_at,
        )

    def _series_items(
        self, calendar: Calendar, master: StoredEvent, window: Window
    ) -> list[StoredEvent]:
        """The instances of a series overlapping `window`: generated ones, stored exceptions
        in their place, and exceptions moved into the window from elsewhere. Bounded by the
        window's end, or by the configured horizon and instance cap."""
        series = master.series
        assert series is not None
        cap = self.config.max_instances_per_series
        if window.time_max is not None:
            cap = max(cap, 20_000)
        starts = series.occurrences(window.time_min, window.time_max, cap, self._horizon())
        exception_ids = calendar.exceptions.get(master.id, set())
        found: list[StoredEvent] = []
        seen: set[str] = set()
        for original in starts:
            instance = self._instance(master, original)
            seen.add(instance.id)
            stored = calendar.events.get(instance.id) if exception_ids else None
            if stored is None:
                found.append(instance)
            elif stored.cancelled or window.overlaps(stored.start.instant, stored.end.instant):
                found.append(stored)
        for exception_id in exception_ids - seen:
            stored = calendar.events[exception_id]
            if not stored.cancelled and window.overlaps(stored.start.instant, stored.end.instant):
                found.append(stored)
        if master.cancelled:
            # A deleted series: every instance is gone, whatever its exceptions said.
            return [self._as_cancelled(item) for item in found]
        return found

    @staticmethod
    def _as_cancelled(item: StoredEvent) -> StoredEvent:
        if item.cancelled:
            return item
        return StoredEvent(
            {**item.resource, "status": "cancelled"},
            item.seq,
            item.start,
            item.end,
            None,
            item.updated_at,
        )

    def _series_overlaps(self, master: StoredEvent, window: Window) -> bool:
        if window.time_min is None and window.time_max is None:
            return True
        assert master.series is not None
        return bool(master.series.occurrences(window.time_min, window.time_max, 1, self._horizon()))

    @staticmethod
    def _matches(resource: Resource, query: ListQuery) -> bool:
        event_type = resource.get("eventType", "default")
        if query.event_types is not None and event_type not in query.event_types:
            return False
        if query.private_properties or query.shared_properties:
            props = resource.get("extendedProperties") or {}
            private = props.get("private") or {}
            shared = props.get("shared") or {}
            if any(private.get(k) != v for k, v in query.private_properties):
                return False
            if any(shared.get(k) != v for k, v in query.shared_properties):
                return False
        if query.ical_uid is not None and resource.get("iCalUID") != query.ical_uid:
            return False
        if query.q:
            text = " ".join(
                str(resource.get(k, "")) for k in ("summary", "description", "location")
            ).lower()
            if not all(word in text for word in query.q.lower().split()):
                return False
        return True

    def _is_exception(self, calendar: Calendar, event: StoredEvent) -> bool:
        master_id = event.master_id
        if master_id is None:
            return False
        master = calendar.events.get(master_id)
        return master is not None and master.series is not None

    # ------------------------------------------------------------------------------ lists

    def list_events(self, email: str, calendar_id: str, query: ListQuery) -> Resource:
        with self.lock:
            calendar, role = self.resolve_calendar(email, calendar_id)
            if query.page_token:
                cursor = self._cursors.pop(query.page_token, None)
                if cursor is None or cursor.calendar_id != calendar.id:
                    raise errors.invalid("Invalid page token value.", "pageToken")
                return self._page(calendar, role, cursor, query.max_results)
            if query.sync_token:
                state = self._sync_tokens.get(query.sync_token)
                if (
                    state is None
                    or state.calendar_id != calendar.id
                    or state.generation != calendar.generation
                ):
                    raise errors.full_sync_required()
                if state.single_events != query.single_events:
                    raise errors.invalid(
                        "The singleEvents parameter must match the one of the initial sync.",
                        "singleEvents",
                    )
                items = self._changed_items(calendar, state)
                sync = SyncState(
                    calendar.id,
                    calendar.seq,
                    calendar.generation,
                    state.single_events,
                    state.window,
                    state.event_types,
                )
            else:
                items = self._full_items(calendar, query)
                sync = SyncState(
                    calendar.id,
                    calendar.seq,
                    calendar.generation,
                    query.single_events,
                    query.window,
                    query.event_types,
                )
            cursor = PageCursor(calendar.id, items, 0, sync)
            return self._page(calendar, role, cursor, query.max_results)

    def list_instances(
        self, email: str, calendar_id: str, event_id: str, query: ListQuery
    ) -> Resource:
        with self.lock:
            calendar, role = self.resolve_calendar(email, calendar_id)
            if query.page_token:
                cursor = self._cursors.pop(query.page_token, None)
                if cursor is None or cursor.calendar_id != calendar.id:
                    raise errors.invalid("Invalid page token value.", "pageToken")
                return self._page(calendar, role, cursor, query.max_results)
            master = calendar.events.get(event_id)
            if master is None or master.series is None:
                raise errors.not_found()
            if master.cancelled:
                raise errors.deleted()
            items = [
                self._view(item)
                for item in self._series_items(calendar, master, query.window)
                if query.show_deleted or not item.cancelled
            ]
            return self._page(
                calendar, role, PageCursor(calendar.id, items, 0, None), query.max_results
            )

    def _page(self, calendar: Calendar, role: str, cursor: PageCursor, size: int) -> Resource:
        chunk = cursor.items[cursor.offset : cursor.offset + size]
        cursor.offset += len(chunk)
        body: Resource = {
            "kind": "calendar#events",
            "etag": calendar.etag,
            "summary": calendar.summary,
            "description": calendar.description,
            "updated": format_timestamp(self.now()),
            "timeZone": calendar.time_zone,
            "accessRole": role,
            "defaultReminders": [],
        }
        if cursor.offset < len(cursor.items):
            token = secrets.token_urlsafe(24)
            self._cursors[token] = cursor
            while len(self._cursors) > MAX_CURSORS:
                self._cursors.popitem(last=False)
            body["nextPageToken"] = token
        elif cursor.sync is not None:
            token = "C" + secrets.token_urlsafe(24)
            self._sync_tokens[token] = cursor.sync
            body["nextSyncToken"] = token
        body["items"] = chunk
        return body

    def _view(self, event: StoredEvent) -> Resource:
        return self._cancelled_view(event.resource) if event.cancelled else event.resource

    def _full_items(self, calendar: Calendar, query: ListQuery) -> list[Resource]:
        window = query.window
        if not query.single_events:
            found: list[StoredEvent] = []
            for event in calendar.events.values():
                if event.cancelled and not query.show_deleted:
                    continue
                if not self._matches(event.resource, query):
                    continue
                if query.updated_min is not None and event.updated_at < query.updated_min:
                    continue
                if event.series is not None:
                    if not self._series_overlaps(event, window):
                        continue
                elif not window.overlaps(event.start.instant, event.end.instant):
                    continue
                found.append(event)
            if query.order_by == "updated":
                found.sort(key=lambda e: e.seq)
            return [self._view(e) for e in found]
        expanded: list[StoredEvent] = []
        for event in calendar.events.values():
            if event.series is not None:
                if event.cancelled and not query.show_deleted:
                    continue
                candidates = self._series_items(calendar, event, window)
            elif self._is_exception(calendar, event):
                continue  # shown in its series' place
            elif not window.overlaps(event.start.instant, event.end.instant):
                continue
            else:
                candidates = [event]
            for item in candidates:
                if item.cancelled and not query.show_deleted:
                    continue
                if not self._matches(item.resource, query):
                    continue
                if query.updated_min is not None and item.updated_at < query.updated_min:
                    continue
                expanded.append(item)
        if query.order_by == "updated":
            expanded.sort(key=lambda e: e.seq)
        else:
            expanded.sort(key=lambda e: (e.start.instant, e.id))
        return [self._view(e) for e in expanded]

    def _changed_items(self, calendar: Calendar, state: SyncState) -> list[Resource]:
        start = bisect.bisect_right(calendar.log_seqs, state.seq)
        changed = dict.fromkeys(calendar.log_ids[start:])
        window = state.window
        out: dict[str, Resource] = {}
        type_filter = ListQuery(event_types=state.event_types)

        def add(item: StoredEvent) -> None:
            if item.cancelled:
                # Deleted items always come back, whatever the window: the client must learn.
                out[item.id] = self._cancelled_view(item.resource)
            elif self._matches(item.resource, type_filter):
                out[item.id] = item.resource

        for event_id in changed:
            event = calendar.events[event_id]
            if state.single_events and event.series is not None:
                for item in self._series_items(calendar, event, window):
                    add(item)
            elif state.single_events and self._is_exception(calendar, event):
                if event.cancelled or window.overlaps(event.start.instant, event.end.instant):
                    add(event)
            elif event.cancelled:
                add(event)
            elif event.series is not None:
                if self._series_overlaps(event, window):
                    add(event)
            elif window.overlaps(event.start.instant, event.end.instant):
                add(event)
        return list(out.values())

    # ------------------------------------------------------------------------------ reads

    def _lookup(self, calendar: Calendar, event_id: str) -> tuple[StoredEvent, bool]:
        """The event with this id and whether it is stored; an instance id of a live series
        resolves to its generated instance, as Google lets clients get and edit instances."""
        stored = calendar.events.get(event_id)
        if stored is not None:
            return stored, True
        match = INSTANCE_ID.match(event_id)
        if match:
            master = calendar.events.get(match["master"])
            if master is not None and master.series is not None and not master.cancelled:
                suffix = match["suffix"]
                series = master.series
                try:
                    if "T" in suffix:
                        moment = datetime.strptime(suffix, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                    else:
                        local = master.start.instant.astimezone(series.tz)
                        day = datetime.strptime(suffix, "%Y%m%d")
                        moment = local.replace(year=day.year, month=day.month, day=day.day)
                        moment = moment.astimezone(UTC)
                except ValueError:
                    raise errors.not_found() from None
                starts = series.occurrences(
                    moment - timedelta(seconds=1) - series.duration,
                    moment + timedelta(seconds=1),
                    10,
                    moment + timedelta(seconds=1),
                )
                if moment in starts:
                    return self._instance(master, moment), False
        raise errors.not_found()

    def get_event(self, email: str, calendar_id: str, event_id: str) -> Resource:
        with self.lock:
            calendar, _ = self.resolve_calendar(email, calendar_id)
            event, _ = self._lookup(calendar, event_id)
            return _public(event.resource)

    # ----------------------------------------------------------------------------- writes

    def _build(
        self,
        calendar: Calendar,
        body: Resource,
        event_id: str,
        previous: StoredEvent | None,
        author: str,
        trusted: bool,
    ) -> StoredEvent:
        """A new stored version of an event from a full client body (insert, update, or a
        patch already merged into the previous body)."""
        now = self.now()
        resource: Resource = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        status = resource.get("status") or "confirmed"
        if status not in ("confirmed", "tentative", "cancelled"):
            raise errors.invalid("Invalid value for: status")
        event_type = resource.get("eventType") or "default"
        if event_type not in EVENT_TYPES:
            raise errors.invalid("Invalid event type.")
        if previous is not None:
            before = previous.resource.get("eventType", "default")
            if event_type != before:
                raise errors.GoogleError(
                    400, "eventTypeRestriction", "The event type cannot be changed."
                )
        if resource.get("transparency") not in (None, "opaque", "transparent"):
            raise errors.invalid("Invalid value for: transparency")
        if resource.get("visibility") not in (None, "default", "public", "private", "confidential"):
            raise errors.invalid("Invalid value for: visibility")
        start = parse_event_time(resource.get("start"), calendar.time_zone, "start")
        end = parse_event_time(resource.get("end"), calendar.time_zone, "end")
        if start.all_day != end.all_day:
            raise errors.bad_request(
                "Start and end times must either both be date or both be dateTime."
            )
        if end.instant < start.instant or (start.all_day and end.instant == start.instant):
            raise errors.GoogleError(400, "timeRangeEmpty", "The specified time range is empty.")
        series: Series | None = None
        if resource.get("recurrence"):
            if not isinstance(resource["recurrence"], list):
                raise errors.invalid("Invalid recurrence rule.")
            series = parse_series(resource["recurrence"], start, end)
        if event_type == "workingLocation":
            # Working location is always public and free, whatever the client sent.
            resource["visibility"] = "public"
            resource["transparency"] = "transparent"
        attendees = resource.get("attendees")
        if attendees is not None:
            if not isinstance(attendees, list):
                raise errors.invalid("Invalid attendees.")
            marked = []
            for attendee in attendees:
                if not isinstance(attendee, dict) or not attendee.get("email"):
                    raise errors.required("Missing attendee email.")
                entry = {k: v for k, v in attendee.items() if k != "self"}
                entry.setdefault("responseStatus", "needsAction")
                if str(entry["email"]).lower() == calendar.id.lower():
                    entry["self"] = True
                marked.append(entry)
            resource["attendees"] = marked
        organizer: Resource = {"email": calendar.id, "displayName": calendar.summary, "self": True}
        if trusted and isinstance(body.get("organizer"), dict):
            organizer = dict(body["organizer"])
            if organizer.get("email") == calendar.id:
                organizer["self"] = True
        elif previous is not None:
            organizer = previous.resource.get("organizer", organizer)
        sequence = int(resource.get("sequence") or 0)
        if previous is not None:
            sequence = int(previous.resource.get("sequence", 0))
            if (previous.start, previous.end, previous.resource.get("recurrence")) != (
                start,
                end,
                resource.get("recurrence"),
            ):
                sequence += 1
            for key in ("recurringEventId", "originalStartTime"):
                if key in previous.resource:
                    resource[key] = previous.resource[key]
        creator = previous.resource["creator"] if previous is not None else {"email": author}
        if trusted and isinstance(body.get("creator"), dict):
            creator = body["creator"]
        created = previous.resource["created"] if previous is not None else format_timestamp(now)
        resource.update(
            kind="calendar#event",
            etag=self._etag(),
            id=event_id,
            status=status,
            htmlLink=f"https://www.google.com/calendar/event?eid={event_id}",
            created=created,
            updated=format_timestamp(now),
            creator=creator,
            organizer=organizer,
            iCalUID=resource.get("iCalUID")
            or (previous.resource.get("iCalUID") if previous else None)
            or f"{event_id}@google.com",
            sequence=sequence,
            eventType=event_type,
        )
        resource.setdefault("reminders", {"useDefault": True})
        return StoredEvent(resource, 0, start, end, series, now)

    def _store(self, calendar: Calendar, event: StoredEvent) -> None:
        calendar.seq += 1
        event.seq = calendar.seq
        calendar.events[event.id] = event
        calendar.log_seqs.append(calendar.seq)
        calendar.log_ids.append(event.id)
        master_id = event.master_id
        if master_id is not None:
            calendar.exceptions.setdefault(master_id, set()).add(event.id)

    @staticmethod
    def _check_if_match(event: StoredEvent, if_match: str | None) -> None:
        if if_match and if_match.strip() != "*" and if_match.strip() != event.resource["etag"]:
            raise errors.condition_not_met()

    def insert_event(
        self,
        email: str,
        calendar_id: str,
        body: Resource,
        *,
        trusted: bool = False,
    ) -> Resource:
        with self.lock:
            calendar = self._writable(email, calendar_id, trusted)
            event_id = body.get("id")
            if event_id is None:
                event_id = _base32hex_id()
                while event_id in calendar.events:
                    event_id = _base32hex_id()
            elif not isinstance(event_id, str) or not EVENT_ID.match(event_id):
                raise errors.invalid("Invalid resource id value.")
            elif event_id in calendar.events:
                # Deleted events keep their id: re-inserting it is a duplicate, as on Google.
                raise errors.duplicate()
            fields = {
                k: v
                for k, v in body.items()
                if k not in ("recurringEventId", "originalStartTime") or trusted
            }
            event = self._build(calendar, fields, event_id, None, email, trusted)
            self._store(calendar, event)
            calendar_key = calendar.id
            result = _public(event.resource)
        self._notify([calendar_key])
        return result

    def update_event(
        self,
        email: str,
        calendar_id: str,
        event_id: str,
        body: Resource,
        *,
        patch: bool,
        if_match: str | None = None,
        trusted: bool = False,
    ) -> Resource:
        with self.lock:
            calendar = self._writable(email, calendar_id, trusted)
            current, _stored = self._lookup(calendar, event_id)
            self._check_if_match(current, if_match)
            if patch:
                merged = _merge(current.resource, body)
            else:
                merged = dict(body)
                for key in ("recurringEventId", "originalStartTime", "iCalUID"):
                    if key in current.resource:
                        merged[key] = current.resource[key]
            event = self._build(calendar, merged, current.id, current, email, trusted)
            self._store(calendar, event)
            calendar_key = calendar.id
            result = _public(event.resource)
        self._notify([calendar_key])
        return result

    def delete_event(
        self,
        email: str,
        calendar_id: str,
        event_id: str,
        *,
        if_match: str | None = None,
        trusted: bool = False,
    ) -> None:
        with self.lock:
            calendar = self._writable(email, calendar_id, trusted)
            current, _stored = self._lookup(calendar, event_id)
            if current.cancelled:
                raise errors.deleted()
            self._check_if_match(current, if_match)
            self._cancel(calendar, current)
            if current.series is not None:
                for exception_id in sorted(calendar.exceptions.get(current.id, ())):
                    exception = calendar.events[exception_id]
                    if not exception.cancelled:
                        self._cancel(calendar, exception)
            calendar_key = calendar.id
        self._notify([calendar_key])

    def _cancel(self, calendar: Calendar, event: StoredEvent) -> None:
        resource = {
            **event.resource,
            "status": "cancelled",
            "etag": self._etag(),
            "updated": format_timestamp(self.now()),
        }
        self._store(
            calendar,
            StoredEvent(resource, 0, event.start, event.end, event.series, self.now()),
        )

    # ---------------------------------------------------------------------------- scenario

    def events_of(self, calendar_id: str) -> list[Resource]:
        """Every stored event of a calendar, for the scenario's live changes."""
        with self.lock:
            calendar = self.calendars.get(calendar_id)
            return (
                [] if calendar is None else [_public(e.resource) for e in calendar.events.values()]
            )


def _public(resource: Resource) -> Resource:
    """A copy to hand out, so a caller cannot change what is stored."""
    return dict(resource)


def _merge(base: Resource, patch: Resource) -> Resource:
    """PATCH semantics: sent fields replace, omitted stay, objects merge, arrays replace whole,
    and null clears."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and key not in PATCH_REPLACES
        ):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
