"""The Graph emulator's memory: mailboxes, tokens, calendars, events, series and change logs."""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.recurrence import normalise, occurrence_starts
from calsync_server.emulators.microsoft.zones import UnknownZone, windows_name, zone_info

Resource = dict[str, Any]

SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
SENSITIVITY = ("normal", "personal", "private", "confidential")
IMPORTANCE = ("low", "normal", "high")
RESPONSES = ("none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded")
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
# What a client may write; anything else is a property Graph does not know (400).
WRITABLE = frozenset(
    {
        "subject",
        "body",
        "start",
        "end",
        "isAllDay",
        "location",
        "locations",
        "showAs",
        "sensitivity",
        "importance",
        "categories",
        "isReminderOn",
        "reminderMinutesBeforeStart",
        "attendees",
        "recurrence",
        "isOnlineMeeting",
        "onlineMeetingProvider",
        "responseRequested",
        "allowNewTimeProposals",
        "hideAttendees",
        "transactionId",
        "singleValueExtendedProperties",
    }
)
# Server-owned properties: Graph ignores them in a request body; the admin API and scenario
# (trusted) may set the ones an invitation from someone else carries.
READ_ONLY = frozenset(
    {
        "@odata.etag",
        "@odata.context",
        "id",
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
        "iCalUId",
        "webLink",
        "type",
        "seriesMasterId",
        "originalStart",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "hasAttachments",
        "bodyPreview",
        "onlineMeetingUrl",
        "isCancelled",
        "isOrganizer",
        "responseStatus",
        "organizer",
    }
)
TRUSTED_FIELDS = ("isCancelled", "isOrganizer", "responseStatus", "organizer")
EXTENDED_ID = re.compile(
    r"^(String|Integer|Boolean|SystemTime|Double|Binary|Long|Short|Float|Currency|CLSID)\s+"
    r"(\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}\s+"
    r"(Name\s+\S.*|Id\s+0x[0-9a-fA-F]+)|0x[0-9a-fA-F]{1,4})$"
)
NULL_TIME = "0001-01-01T00:00:00Z"
OCCURRENCE_PREFIX = "AAMkOc"
MAX_WINDOW_DAYS = 1825


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def _new_ids() -> tuple[str, str]:
    """An event's immutable id and its REST id: two opaque spellings of one item, as Graph
    hands out one or the other depending on `Prefer: IdType`."""
    raw = secrets.token_bytes(33)
    return "AAkALg" + _b64(raw), "AAMkAG" + _b64(raw[::-1])


def _occurrence_id(master_id: str, original: datetime) -> str:
    stamp = original.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return OCCURRENCE_PREFIX + _b64(f"{master_id}|{stamp}".encode())


def _parse_occurrence_id(value: str) -> tuple[str, datetime] | None:
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


def _local_text(moment: datetime, zone: str, all_day: bool) -> str:
    if all_day:
        # All-day events come back midnight to midnight whatever zone is asked for.
        local = moment.replace(tzinfo=None)
    else:
        local = moment.astimezone(zone_info(zone)).replace(tzinfo=None)
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


class Store:
    """All Graph emulator state behind one lock: each operation is short and in memory."""

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

    # ---------------------------------------------------------------------- mailboxes

    def create_mailbox(
        self, email: str, name: str | None, time_zone: str, calendars: list[Resource]
    ) -> tuple[Mailbox, str, str]:
        """A work account with its default calendar and `calendars` more; its first tokens."""
        try:
            zone_info(time_zone)
        except UnknownZone:
            raise errors.bad_request(f"Unknown time zone '{time_zone}'.") from None
        with self.lock:
            if email.lower() in self.by_email:
                raise errors.GraphError(409, "Conflict", f"Account {email} already exists.")
            # One tenant per domain, as in Entra ID: colleagues share a tenant id.
            domain = email.split("@")[1].lower()
            tenant = str(uuid.uuid5(uuid.NAMESPACE_DNS, domain))
            mailbox = Mailbox(str(uuid.uuid4()), tenant, email, name or email, time_zone)
            self.mailboxes[mailbox.oid] = mailbox
            self.by_email[email.lower()] = mailbox.oid
            default = self._new_calendar(mailbox, "Calendar", True, True, None)
            mailbox.default_calendar = default.id
            for spec in calendars:
                self._new_calendar(
                    mailbox,
                    str(spec.get("name") or "Calendar"),
                    False,
                    bool(spec.get("can_edit", True)),
                    spec.get("color"),
                )
            access, refresh = self.issue_tokens(mailbox.oid)
            return mailbox, access, refresh

    def _new_calendar(
        self, mailbox: Mailbox, name: str, is_default: bool, can_edit: bool, color: Any
    ) -> CalendarRecord:
        index = next(self._colors) % len(COLORS)
        chosen = COLORS[index]
        if isinstance(color, str):
            chosen = next((c for c in COLORS if c[0] == color), chosen)
        calendar = CalendarRecord(
            id="AAMkAG" + _b64(secrets.token_bytes(30)) + "AAA=",
            owner=mailbox.oid,
            name=name,
            color=chosen[0],
            hex_color=chosen[1],
            is_default=is_default,
            can_edit=can_edit,
            change_key=_b64(secrets.token_bytes(12)),
        )
        self.calendars[calendar.id] = calendar
        mailbox.calendars.append(calendar.id)
        return calendar

    def add_calendar(self, mailbox: Mailbox, name: str, *, can_edit: bool) -> CalendarRecord:
        """One more calendar of the mailbox: made by its owner (POST /me/calendars), or shared
        into it by someone else, read-only when `can_edit` is false (admin API)."""
        with self.lock:
            return self._new_calendar(mailbox, name, False, can_edit, None)

    def mailbox_of(self, email: str) -> Mailbox:
        with self.lock:
            oid = self.by_email.get(email.lower())
            if oid is None:
                raise errors.item_not_found()
            return self.mailboxes[oid]

    # ------------------------------------------------------------------------ tokens

    def issue_tokens(self, oid: str) -> tuple[str, str]:
        """A new access token and a new refresh token (Entra hands out a fresh refresh token on
        every grant; the old one stays valid until its own expiry)."""
        with self.lock:
            now = self.now()
            access = "EwB" + secrets.token_urlsafe(64)
            self.access_tokens[access] = IssuedToken(
                oid, now + timedelta(seconds=self.config.access_token_lifetime_s)
            )
            refresh = "M.C5" + secrets.token_urlsafe(64)
            self.refresh_tokens[refresh] = IssuedToken(
                oid, now + timedelta(seconds=self.config.refresh_token_lifetime_s)
            )
            return access, refresh

    def redeem_refresh_token(self, token: str) -> str | None:
        """The account a refresh token speaks for, or None when unknown, expired or revoked."""
        with self.lock:
            issued = self.refresh_tokens.get(token)
            if issued is None or issued.oid not in self.mailboxes:
                return None
            if issued.expires_at <= self.now():
                del self.refresh_tokens[token]
                return None
            return issued.oid

    def revoke_sessions(self, oid: str) -> None:
        """revokeSignInSessions: every refresh token of the account dies (access tokens live
        on until they expire, as in Entra)."""
        with self.lock:
            for key in [k for k, v in self.refresh_tokens.items() if v.oid == oid]:
                del self.refresh_tokens[key]
                self.revoked_refresh_tokens.add(key)

    def refuse_login(self, oid: str) -> None:
        """A changed password or a revoked consent: every token of the account dies at once,
        access tokens included (Graph enforces this through continuous access evaluation)."""
        with self.lock:
            self.revoke_sessions(oid)
            for key in [k for k, v in self.access_tokens.items() if v.oid == oid]:
                del self.access_tokens[key]

    def authenticate(self, authorization: str | None) -> Mailbox:
        if not authorization:
            raise errors.unauthenticated()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.unauthenticated("Invalid authentication token.")
        with self.lock:
            issued = self.access_tokens.get(token.strip())
            if issued is None or issued.oid not in self.mailboxes:
                raise errors.unauthenticated("Invalid authentication token.")
            if issued.expires_at <= self.now():
                raise errors.unauthenticated("Lifetime validation failed, the token is expired.")
            return self.mailboxes[issued.oid]

    def new_auth_code(self, code: AuthCode) -> str:
        with self.lock:
            value = "1.A" + secrets.token_urlsafe(48)
            self.auth_codes[value] = code
            return value

    def redeem_code(self, value: str) -> AuthCode | None:
        with self.lock:
            code = self.auth_codes.pop(value, None)
            if code is None or code.expires_at <= self.now():
                return None
            return code

    # ---------------------------------------------------------------------- calendars

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

    # -------------------------------------------------------------------- events: read

    def find(self, mailbox: Mailbox, event_id: str, calendar_id: str | None = None) -> Item:
        """The event or occurrence an id (either spelling) names, in the mailbox's calendars."""
        with self.lock:
            occurrence = _parse_occurrence_id(event_id)
            if occurrence is not None:
                master_key, original = occurrence
                master = self._record(mailbox, master_key, calendar_id)
                item = self._occurrence_item(master, original)
                if item is None:
                    raise errors.item_not_found()
                return item
            record = self._record(mailbox, event_id, calendar_id)
            return self._item(record)

    def _record(self, mailbox: Mailbox, event_id: str, calendar_id: str | None) -> EventRecord:
        entry = self.event_index.get(event_id)
        if entry is None or entry[0] not in mailbox.calendars:
            raise errors.item_not_found()
        if calendar_id is not None and entry[0] != calendar_id:
            raise errors.item_not_found()
        record = self.calendars[entry[0]].events.get(entry[1])
        if record is None:
            raise errors.item_not_found()
        return record

    @staticmethod
    def _item(record: EventRecord) -> Item:
        return Item(
            record.id,
            record.rest_id,
            record.kind,
            record.start,
            record.end,
            record,
            record.original_start,
        )

    def _occurrence_item(self, master: EventRecord, original: datetime) -> Item | None:
        """The occurrence of `master` that starts (originally) at `original`: None if the
        series has no such occurrence or it was deleted; its exception if it was changed."""
        if master.kind != "seriesMaster" or original in master.cancelled_starts:
            return None
        exception_id = master.exceptions.get(original)
        if exception_id is not None:
            return self._item(self.calendars[master.calendar_id].events[exception_id])
        for start in self._series_starts(master, original + timedelta(seconds=1)):
            if start == original:
                return self._make_occurrence(master, start)
            if start > original:
                break
        return None

    def _make_occurrence(self, master: EventRecord, start: datetime) -> Item:
        return Item(
            _occurrence_id(master.id, start),
            _occurrence_id(master.rest_id, start),
            "occurrence",
            start,
            start + (master.end - master.start),
            master,
            start,
        )

    def _series_starts(self, master: EventRecord, until: datetime) -> list[datetime]:
        assert master.recurrence is not None
        zone_name = master.recurrence["range"].get("recurrenceTimeZone") or master.start_zone
        if master.is_all_day:
            first = master.start.replace(tzinfo=None).replace(tzinfo=UTC)
            zone = zone_info("UTC")
        else:
            first, zone = master.start, zone_info(zone_name)
        starts: list[datetime] = []
        for local in occurrence_starts(
            master.recurrence, first, zone, self.config.max_occurrences_per_series
        ):
            moment = local.astimezone(UTC)
            if moment >= until:
                break
            starts.append(moment)
        return starts

    def series_items(self, master: EventRecord, begin: datetime, finish: datetime) -> list[Item]:
        """The occurrences and exceptions of a series that overlap the window."""
        calendar = self.calendars[master.calendar_id]
        items: list[Item] = []
        length = master.end - master.start
        for start in self._series_starts(master, finish):
            if start in master.cancelled_starts or start in master.exceptions:
                continue
            if start + length > begin:
                items.append(self._make_occurrence(master, start))
        for exception_id in master.exceptions.values():
            exception = calendar.events[exception_id]
            if exception.end > begin and exception.start < finish:
                items.append(self._item(exception))
        return items

    def view_items(self, calendar: CalendarRecord, begin: datetime, finish: datetime) -> list[Item]:
        """calendarView: single instances, occurrences and exceptions in the window, by start.
        Masters are not in a view; their occurrences are."""
        with self.lock:
            items: list[Item] = []
            for record in calendar.events.values():
                if record.kind == "seriesMaster":
                    items.extend(self.series_items(record, begin, finish))
                elif (
                    record.kind == "singleInstance" and record.end > begin and record.start < finish
                ):
                    items.append(self._item(record))
            items.sort(key=lambda item: (item.start, item.id))
            return items

    def list_records(self, calendar: CalendarRecord) -> list[EventRecord]:
        """`/events`: single instances and series masters (not occurrences or exceptions)."""
        with self.lock:
            return [
                r
                for r in sorted(calendar.events.values(), key=lambda r: (r.created, r.id))
                if r.kind in ("singleInstance", "seriesMaster")
            ]

    def render(
        self,
        item: Item,
        zone: str | None = None,
        immutable: bool = False,
        expand: tuple[str, ...] | None = None,
    ) -> Resource:
        """The event as Graph answers it, in `zone` (UTC when not asked) with either id."""
        with self.lock:
            record = item.record
            zone = zone or "UTC"
            master_id: str | None = None
            if item.kind == "occurrence":
                master_id = record.id if immutable else record.rest_id
            elif item.kind == "exception" and record.series_master_id is not None:
                master = self.calendars[record.calendar_id].events.get(record.series_master_id)
                if master is not None:
                    master_id = master.id if immutable else master.rest_id
            fields = record.fields
            body = fields.get("body") or {"contentType": "text", "content": ""}
            resource: Resource = {
                "@odata.etag": f'W/"{record.change_key}"',
                "id": item.id if immutable else item.rest_id,
                "createdDateTime": graph_time(record.created),
                "lastModifiedDateTime": graph_time(record.modified),
                "changeKey": record.change_key,
                "categories": list(fields.get("categories") or []),
                "transactionId": record.transaction_id,
                "originalStartTimeZone": record.start_zone,
                "originalEndTimeZone": record.end_zone,
                "iCalUId": record.ical_uid,
                "reminderMinutesBeforeStart": fields.get("reminderMinutesBeforeStart", 15),
                "isReminderOn": fields.get("isReminderOn", True),
                "hasAttachments": False,
                "subject": fields.get("subject", ""),
                "bodyPreview": str(body.get("content") or "")[:255],
                "importance": fields.get("importance", "normal"),
                "sensitivity": fields.get("sensitivity", "normal"),
                "isAllDay": record.is_all_day,
                "isCancelled": record.is_cancelled,
                "isOrganizer": record.is_organizer,
                "responseRequested": fields.get("responseRequested", True),
                "seriesMasterId": master_id,
                "showAs": fields.get("showAs", "busy"),
                "type": item.kind,
                "webLink": f"https://outlook.office365.com/owa/?itemid={item.rest_id}",
                "onlineMeetingUrl": None,
                "isOnlineMeeting": fields.get("isOnlineMeeting", False),
                "responseStatus": {"response": record.response, "time": record.response_time},
                "body": body,
                "start": {
                    "dateTime": _local_text(item.start, zone, record.is_all_day),
                    "timeZone": zone,
                },
                "end": {
                    "dateTime": _local_text(item.end, zone, record.is_all_day),
                    "timeZone": zone,
                },
                "location": fields.get("location") or {"displayName": ""},
                "locations": list(fields.get("locations") or []),
                "recurrence": record.recurrence if item.kind == "seriesMaster" else None,
                "attendees": list(fields.get("attendees") or []),
                "organizer": record.organizer,
            }
            if item.original_start is not None and item.kind in ("occurrence", "exception"):
                resource["originalStart"] = graph_time(item.original_start)
            if expand is not None:
                resource["singleValueExtendedProperties"] = [
                    {"id": key, "value": value}
                    for key, value in record.extended.items()
                    if not expand or key.lower() in expand
                ]
            return resource

    # ------------------------------------------------------------------- events: write

    def _check_writable(self, calendar: CalendarRecord, trusted: bool) -> None:
        if not calendar.can_edit and not trusted:
            raise errors.access_denied()

    def _times(
        self, body: Resource, previous: EventRecord | None
    ) -> tuple[datetime, datetime, str, str, bool]:
        """Start, end (UTC), their zones and isAllDay, validated as Graph does."""
        all_day = bool(body.get("isAllDay", previous.is_all_day if previous else False))
        parsed: list[tuple[datetime, str]] = []
        for name in ("start", "end"):
            value = body.get(name)
            if value is None:
                if previous is None:
                    raise errors.bad_request(
                        f"The '{name}' property is required.", "ErrorPropertyValidationFailure"
                    )
                moment = previous.start if name == "start" else previous.end
                zone = previous.start_zone if name == "start" else previous.end_zone
                if previous.is_all_day:
                    local = moment.replace(tzinfo=None)
                else:
                    local = moment.astimezone(zone_info(zone)).replace(tzinfo=None)
                parsed.append((local, zone))
                continue
            if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
                raise errors.bad_request(f"Invalid '{name}': needs dateTime and timeZone.")
            zone = value.get("timeZone") or "UTC"
            try:
                zone_info(zone)
            except UnknownZone:
                raise errors.bad_request(
                    f"A valid TimeZone value must be specified. The following TimeZone value is "
                    f"not supported: '{zone}'.",
                    "TimeZoneNotSupportedException",
                ) from None
            text = value["dateTime"]
            try:
                local = datetime.fromisoformat(text[:26] if len(text) > 26 else text)
            except ValueError:
                raise errors.bad_request(f"Invalid '{name}.dateTime': {text}") from None
            parsed.append((local.replace(tzinfo=None), zone))
        (start_local, start_zone), (end_local, end_zone) = parsed
        if all_day:
            midnight = time(0, 0)
            if (
                start_local.time() != midnight
                or end_local.time() != midnight
                or windows_name(start_zone) != windows_name(end_zone)
            ):
                raise errors.bad_request(
                    "Your request can't be completed. If an event is marked as all-day, its "
                    "start and end time must be set to midnight, and they must be in the same "
                    "time zone.",
                    "ErrorPropertyValidationFailure",
                )
            # All-day events float: stored as the dates, read the same in every zone.
            start = start_local.replace(tzinfo=UTC)
            end = end_local.replace(tzinfo=UTC)
        else:
            start = start_local.replace(tzinfo=zone_info(start_zone)).astimezone(UTC)
            end = end_local.replace(tzinfo=zone_info(end_zone)).astimezone(UTC)
        if end < start:
            raise errors.bad_request(
                "The end time of the event must be after its start time.",
                "ErrorPropertyValidationFailure",
            )
        return start, end, start_zone, end_zone, all_day

    @staticmethod
    def _check_fields(body: Resource, trusted: bool) -> None:
        for key in body:
            if key in WRITABLE or key in READ_ONLY or key.startswith("@odata"):
                continue
            raise errors.bad_request(
                f"The property '{key}' does not exist on type 'microsoft.graph.event'. Make sure "
                "to only use property names that are defined by the type.",
                "RequestBodyRead",
            )
        for key, allowed in (
            ("showAs", SHOW_AS),
            ("sensitivity", SENSITIVITY),
            ("importance", IMPORTANCE),
        ):
            if key in body and body[key] not in allowed:
                raise errors.bad_request(
                    f"Cannot convert the literal '{body[key]}' to the expected type "
                    f"'microsoft.graph.{key}'.",
                    "RequestBodyRead",
                )
        response = body.get("responseStatus")
        if trusted and isinstance(response, dict) and response.get("response") not in RESPONSES:
            raise errors.bad_request("Invalid responseStatus.")

    @staticmethod
    def _extended(body: Resource, into: dict[str, str]) -> None:
        properties = body.get("singleValueExtendedProperties")
        if properties is None:
            return
        if not isinstance(properties, list):
            raise errors.bad_request("singleValueExtendedProperties must be a collection.")
        for entry in properties:
            if not isinstance(entry, dict):
                raise errors.bad_request("Invalid extended property.")
            key, value = entry.get("id"), entry.get("value")
            if not isinstance(key, str) or not EXTENDED_ID.match(key.strip()):
                raise errors.bad_request(
                    f"The extended property id '{key}' is not valid.", "ErrorInvalidProperty"
                )
            if not isinstance(value, str):
                raise errors.bad_request("An extended property's value must be a string.")
            into[key.strip()] = value

    @staticmethod
    def _attendees(value: Any) -> list[Resource]:
        if not isinstance(value, list):
            raise errors.bad_request("attendees must be a collection.")
        attendees: list[Resource] = []
        for entry in value:
            if not isinstance(entry, dict) or not isinstance(entry.get("emailAddress"), dict):
                raise errors.bad_request("An attendee needs an emailAddress.")
            attendees.append(
                {
                    "type": entry.get("type", "required"),
                    "status": entry.get("status") or {"response": "none", "time": NULL_TIME},
                    "emailAddress": entry["emailAddress"],
                }
            )
        return attendees

    def _touch(self, calendar: CalendarRecord, record: EventRecord) -> None:
        record.seq = next(self._seq)
        record.modified = self.now()
        record.change_key = _b64(secrets.token_bytes(12)).rstrip("=")
        calendar.log.append((record.seq, record.id))

    def _apply(self, record: EventRecord, body: Resource, mailbox: Mailbox, trusted: bool) -> None:
        for key in WRITABLE - {"start", "end", "isAllDay", "recurrence", "transactionId"}:
            if key == "singleValueExtendedProperties":
                continue
            if key in body:
                value = body[key]
                record.fields[key] = self._attendees(value) if key == "attendees" else value
        self._extended(body, record.extended)
        if trusted:
            if "isCancelled" in body:
                record.is_cancelled = bool(body["isCancelled"])
            if "isOrganizer" in body:
                record.is_organizer = bool(body["isOrganizer"])
            if isinstance(body.get("responseStatus"), dict):
                record.response = str(body["responseStatus"]["response"])
                record.response_time = graph_time(self.now())
            if isinstance(body.get("organizer"), dict):
                record.organizer = body["organizer"]
        if record.organizer is None:
            record.organizer = {"emailAddress": {"name": mailbox.name, "address": mailbox.email}}

    def create_event(
        self,
        mailbox: Mailbox,
        calendar_id: str | None,
        body: Resource,
        *,
        trusted: bool = False,
    ) -> tuple[Item, bool]:
        """A new event (201), or the one an earlier POST with the same transactionId made:
        then the flag is False and nothing new is stored."""
        self._check_fields(body, trusted)
        with self.lock:
            calendar = self.calendar(mailbox, calendar_id)
            self._check_writable(calendar, trusted)
            transaction = body.get("transactionId")
            now = self.now()
            if isinstance(transaction, str) and transaction:
                earlier = calendar.transactions.get(transaction)
                window = timedelta(seconds=self.config.transaction_window_s)
                if earlier is not None and now - earlier[1] < window:
                    existing = calendar.events.get(earlier[0])
                    if existing is not None:
                        return self._item(existing), False
            start, end, start_zone, end_zone, all_day = self._times(body, None)
            immutable, rest = _new_ids()
            record = EventRecord(
                id=immutable,
                rest_id=rest,
                calendar_id=calendar.id,
                fields={},
                start=start,
                end=end,
                start_zone=start_zone,
                end_zone=end_zone,
                is_all_day=all_day,
                kind="singleInstance",
                created=now,
                modified=now,
                change_key="",
                seq=0,
                transaction_id=transaction if isinstance(transaction, str) else None,
                ical_uid="040000008200E00074C5B7101A82E008" + secrets.token_hex(28).upper(),
            )
            if body.get("recurrence") is not None:
                local_day = (
                    start.date() if all_day else start.astimezone(zone_info(start_zone)).date()
                )
                record.recurrence = normalise(body["recurrence"], local_day)
                record.kind = "seriesMaster"
                # The master starts at the series' first occurrence, as Outlook moves it.
                starts = self._series_starts(record, datetime.max.replace(tzinfo=UTC))
                if starts:
                    length = end - start
                    record.start, record.end = starts[0], starts[0] + length
            self._apply(record, body, mailbox, trusted)
            calendar.events[immutable] = record
            self.event_index[immutable] = (calendar.id, immutable)
            self.event_index[rest] = (calendar.id, immutable)
            self._touch(calendar, record)
            if record.transaction_id:
                calendar.transactions[record.transaction_id] = (immutable, now)
            item = self._item(record)
        self._notify([Change.of(mailbox.oid, record, "created")])
        return item, True

    def _check_if_match(self, record: EventRecord, if_match: str | None) -> None:
        if if_match is None or if_match.strip() == "*":
            return
        tag = if_match.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') != record.change_key:
            raise errors.change_key_mismatch()

    def update_event(
        self,
        mailbox: Mailbox,
        event_id: str,
        body: Resource,
        *,
        calendar_id: str | None = None,
        if_match: str | None = None,
        trusted: bool = False,
    ) -> Item:
        """PATCH: merges the given properties; an occurrence patched becomes an exception."""
        self._check_fields(body, trusted)
        with self.lock:
            item = self.find(mailbox, event_id, calendar_id)
            calendar = self.calendars[item.record.calendar_id]
            self._check_writable(calendar, trusted)
            record = self._materialise(calendar, item) if item.kind == "occurrence" else item.record
            self._check_if_match(record, if_match)
            if "recurrence" in body and record.kind in ("occurrence", "exception"):
                raise errors.bad_request("An occurrence cannot have a recurrence.")
            if any(k in body for k in ("start", "end", "isAllDay")):
                start, end, start_zone, end_zone, all_day = self._times(body, record)
                record.start, record.end = start, end
                record.start_zone, record.end_zone, record.is_all_day = (
                    start_zone,
                    end_zone,
                    all_day,
                )
            if body.get("recurrence") is not None and record.kind != "exception":
                record.recurrence = normalise(body["recurrence"], record.start.date())
                record.kind = "seriesMaster"
            self._apply(record, body, mailbox, trusted)
            self._touch(calendar, record)
            result = self._item(record)
        self._notify([Change.of(mailbox.oid, record, "updated")])
        return result

    def _materialise(self, calendar: CalendarRecord, item: Item) -> EventRecord:
        """An occurrence turned into a stored exception of its master."""
        master = item.record
        assert item.original_start is not None
        immutable, rest = _new_ids()
        record = EventRecord(
            id=item.id,
            rest_id=item.rest_id,
            calendar_id=calendar.id,
            fields=dict(master.fields),
            start=item.start,
            end=item.end,
            start_zone=master.start_zone,
            end_zone=master.end_zone,
            is_all_day=master.is_all_day,
            kind="exception",
            created=master.created,
            modified=master.modified,
            change_key=master.change_key,
            seq=master.seq,
            series_master_id=master.id,
            original_start=item.original_start,
            is_cancelled=master.is_cancelled,
            is_organizer=master.is_organizer,
            response=master.response,
            response_time=master.response_time,
            organizer=master.organizer,
            extended=dict(master.extended),
            ical_uid=master.ical_uid,
        )
        del immutable, rest  # an exception keeps its occurrence's ids
        calendar.events[record.id] = record
        self.event_index[record.id] = (calendar.id, record.id)
        self.event_index[record.rest_id] = (calendar.id, record.id)
        master.exceptions[item.original_start] = record.id
        return record

    def delete_event(
        self,
        mailbox: Mailbox,
        event_id: str,
        *,
        calendar_id: str | None = None,
        if_match: str | None = None,
        trusted: bool = False,
    ) -> None:
        with self.lock:
            item = self.find(mailbox, event_id, calendar_id)
            calendar = self.calendars[item.record.calendar_id]
            self._check_writable(calendar, trusted)
            changes: list[Change] = []
            if item.kind in ("occurrence", "exception"):
                master_id = (
                    item.record.id if item.kind == "occurrence" else item.record.series_master_id
                )
                master = calendar.events.get(master_id or "")
                assert item.original_start is not None
                assert master is not None
                if item.kind == "exception":
                    self._check_if_match(item.record, if_match)
                    self._drop(calendar, item.record)
                    master.exceptions.pop(item.original_start, None)
                master.cancelled_starts.add(item.original_start)
                # The occurrence itself is what a client saw go; the log carries its id.
                self._touch(calendar, master)
                calendar.log.append((master.seq, item.id))
                self.gone[item.id] = item.rest_id
                # Graph reports a deleted occurrence as an update of its master.
                changes.append(Change.of(mailbox.oid, master, "updated"))
            else:
                record = item.record
                self._check_if_match(record, if_match)
                for exception_id in list(record.exceptions.values()):
                    self._drop(calendar, calendar.events[exception_id])
                self._drop(calendar, record)
                changes.append(Change.of(mailbox.oid, record, "deleted"))
        self._notify(changes)

    def _drop(self, calendar: CalendarRecord, record: EventRecord) -> None:
        calendar.events.pop(record.id, None)
        self.event_index.pop(record.id, None)
        self.event_index.pop(record.rest_id, None)
        self.gone[record.id] = record.rest_id
        calendar.log.append((next(self._seq), record.id))

    def respond(self, mailbox: Mailbox, event_id: str, response: str) -> None:
        """accept / tentativelyAccept / decline: the attendee's own response."""
        with self.lock:
            item = self.find(mailbox, event_id)
            calendar = self.calendars[item.record.calendar_id]
            if item.record.is_organizer:
                raise errors.bad_request(
                    "Your request can't be completed. You can't respond to a meeting you "
                    "organized.",
                    "ErrorInvalidRequest",
                )
            record = self._materialise(calendar, item) if item.kind == "occurrence" else item.record
            record.response = response
            record.response_time = graph_time(self.now())
            self._touch(calendar, record)
        self._notify([Change.of(mailbox.oid, record, "updated")])

    def changed_since(self, calendar: CalendarRecord, seq: int) -> list[str]:
        """Immutable ids of events changed after `seq`, oldest first, each once."""
        with self.lock:
            return list(dict.fromkeys(i for s, i in calendar.log if s > seq))

    def last_seq(self, calendar: CalendarRecord) -> int:
        with self.lock:
            return calendar.log[-1][0] if calendar.log else 0

    def item_by_immutable(self, calendar: CalendarRecord, immutable_id: str) -> Item | None:
        """An item of the calendar by its immutable id, occurrences included; None if gone."""
        with self.lock:
            occurrence = _parse_occurrence_id(immutable_id)
            if occurrence is not None:
                master = calendar.events.get(occurrence[0])
                return None if master is None else self._occurrence_item(master, occurrence[1])
            record = calendar.events.get(immutable_id)
            return None if record is None else self._item(record)

    def rest_id_of(self, calendar: CalendarRecord, immutable_id: str) -> str:
        """The REST spelling of an id, also for items that are gone (kept from the log)."""
        item = self.item_by_immutable(calendar, immutable_id)
        if item is not None:
            return item.rest_id
        with self.lock:
            return self.gone.get(immutable_id, immutable_id)
