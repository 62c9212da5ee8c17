"""The person's hands in a Microsoft 365 mailbox of the Graph emulator: plain httpx on Graph
v1.0 (never calsync's provider code), the admin API for what only others or a bad day do, and
a real MSAL sign-in so `provider()` is calsync's MicrosoftProvider on a real token cache."""

from __future__ import annotations

import json
import math
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import httpx
import msal

from calsync_server.providers.credentials import MicrosoftTokenCache
from calsync_server.providers.microsoft import MARK_ID, MicrosoftProvider
from calsync_server.providers.microsoft.signin import begin_sign_in, client_app, finish_sign_in
from calsync_server.providers.model import ErrorKind
from tests.support.drivers.base import Login, PersonEvent

CLIENT_ID = "00000000-0000-0000-0000-0000000c0de1"
REDIRECT = "http://localhost:8765/oauth/microsoft/callback"
PREFER = 'outlook.timezone="UTC", IdType="ImmutableId"'
DAYS = {
    "MO": "monday",
    "TU": "tuesday",
    "WE": "wednesday",
    "TH": "thursday",
    "FR": "friday",
    "SA": "saturday",
    "SU": "sunday",
}
# What Graph answers for each kind of failure a test asks for (method "*": the next calls).
FAULTS: dict[ErrorKind, tuple[str, int, str]] = {
    ErrorKind.TRANSIENT: ("*", 429, "ApplicationThrottled"),
    ErrorKind.AUTH: ("*", 401, "InvalidAuthenticationToken"),
    ErrorKind.GONE: ("*", 404, "ErrorItemNotFound"),
    ErrorKind.STALE: ("*", 412, "ErrorIrresolvableConflict"),
    ErrorKind.FORBIDDEN: ("*", 403, "ErrorAccessDenied"),
    ErrorKind.CURSOR_EXPIRED: ("calendarView.delta", 410, "syncStateNotFound"),
    ErrorKind.INVALID: ("*", 400, "BadRequest"),
}


@dataclass(frozen=True)
class GraphEndpoints:
    """Where a running Graph emulator answers: `url` (Graph under v1.0/, admin under
    emulator/), `tls_url` (the login authority's root) and the CA that signed its TLS."""

    url: str
    tls_url: str
    ca_path: str


def _graph_time(moment: datetime | date) -> dict[str, str]:
    if isinstance(moment, datetime) and isinstance(moment.tzinfo, ZoneInfo):
        # A zoned series keeps its wall-clock time across a DST change, as the person meant.
        text = moment.replace(tzinfo=None).isoformat(timespec="seconds")
        return {"dateTime": text, "timeZone": moment.tzinfo.key}
    if isinstance(moment, datetime):
        text = moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        return {"dateTime": text, "timeZone": "UTC"}
    return {"dateTime": f"{moment.isoformat()}T00:00:00", "timeZone": "UTC"}


def _read_time(value: dict[str, Any], all_day: bool) -> datetime | date:
    text = str(value["dateTime"])
    head, _, fraction = text.partition(".")
    local = datetime.fromisoformat(f"{head}.{fraction[:6]}" if fraction else head)
    if all_day:
        return local.date()
    return local.replace(tzinfo=UTC)


def recurrence(rule: str, start: datetime | date) -> dict[str, Any]:
    """An RRULE (FREQ, INTERVAL, BYDAY, COUNT, UNTIL) as Graph's patternedRecurrence."""
    parts = dict(p.split("=", 1) for p in rule.upper().split(";") if p)
    # The series starts on the day its start is sent in: the event's own zone, else UTC.
    if isinstance(start, datetime):
        zoned = isinstance(start.tzinfo, ZoneInfo)
        day = (start if zoned else start.astimezone(UTC)).date()
    else:
        day = start
    interval = int(parts.get("INTERVAL", "1"))
    freq = parts["FREQ"]
    pattern: dict[str, Any]
    if freq == "DAILY":
        pattern = {"type": "daily", "interval": interval}
    elif freq == "WEEKLY":
        by_day = parts.get("BYDAY")
        days = [DAYS[d] for d in by_day.split(",")] if by_day else [day.strftime("%A").lower()]
        pattern = {"type": "weekly", "interval": interval, "daysOfWeek": days}
        pattern["firstDayOfWeek"] = "monday"
    elif freq == "MONTHLY":
        pattern = {"type": "absoluteMonthly", "interval": interval, "dayOfMonth": day.day}
    elif freq == "YEARLY":
        pattern = {
            "type": "absoluteYearly",
            "interval": interval,
            "dayOfMonth": day.day,
            "month": day.month,
        }
    else:
        raise ValueError(f"an RRULE Graph cannot say: {rule}")
    span: dict[str, Any] = {"type": "noEnd", "startDate": day.isoformat()}
    if "COUNT" in parts:
        span = {**span, "type": "numbered", "numberOfOccurrences": int(parts["COUNT"])}
    elif "UNTIL" in parts:
        until = datetime.strptime(parts["UNTIL"][:8], "%Y%m%d").date()
        span = {**span, "type": "endDate", "endDate": until.isoformat()}
    return {"pattern": pattern, "range": span}


class MicrosoftDriver:
    """One fresh mailbox of the emulator, signed in through MSAL as calsync would."""

    name = "microsoft"

    def __init__(self, endpoints: GraphEndpoints, *, display_name: str = "Pat Doe") -> None:
        self.endpoints = endpoints
        self.tls = ssl.create_default_context(cafile=endpoints.ca_path)
        self.admin = httpx.Client(base_url=endpoints.url, timeout=15)
        made = self.admin.post(
            "/emulator/accounts",
            json={"email": f"pat-{uuid.uuid4().hex[:12]}@contoso.example", "name": display_name},
        )
        assert made.status_code == 201, made.text
        account = made.json()
        self.email: str = account["email"]
        self.default_calendar: str = account["calendars"][0]["id"]
        self._refresh_token: str = account["refresh_token"]
        self.person = httpx.Client(
            base_url=f"{endpoints.url}v1.0",
            headers={"authorization": f"Bearer {account['access_token']}", "prefer": PREFER},
            timeout=15,
        )
        self.token_cache, self.home_account_id = self._sign_in()

    # ------------------------------------------------------------------- sign-in

    @property
    def authority(self) -> str:
        return f"{self.endpoints.tls_url}common"

    def _sign_in(self) -> tuple[str, str]:
        """MSAL's auth code flow with PKCE; the emulator consents for `login_hint` at once."""
        cache = msal.SerializableTokenCache()
        app = client_app(CLIENT_ID, self.authority, cache=cache, verify=self.endpoints.ca_path)
        flow = begin_sign_in(app, REDIRECT, login_hint=self.email)
        with httpx.Client(verify=self.tls) as browser:
            consent = browser.get(flow["auth_uri"])
        assert consent.status_code == 302, consent.text
        query = parse_qs(urlsplit(consent.headers["location"]).query)
        home = finish_sign_in(app, flow, {k: v[0] for k, v in query.items()})
        return str(cache.serialize()), home

    def sign_in_again(self) -> None:
        """The person signs in anew after a refused login (their own tokens died with it):
        a fresh MSAL cache, and the person's hands take its tokens."""
        self.token_cache, self.home_account_id = self._sign_in()
        cache = json.loads(self.token_cache)
        (access,) = [t["secret"] for t in cache["AccessToken"].values()]
        (refresh,) = [t["secret"] for t in cache["RefreshToken"].values()]
        self.person.headers["authorization"] = f"Bearer {access}"
        self._refresh_token = refresh

    def _keep_cache(self, serialized: str) -> None:
        self.token_cache = serialized

    def login(self, calendar_id: str) -> Login:
        """The mailbox's MSAL token cache, as calsync's sign-in seals it (one account holds
        every calendar the driver makes)."""
        del calendar_id
        cache = MicrosoftTokenCache(
            cache=self.token_cache, home_account_id=self.home_account_id, client_id=CLIENT_ID
        )
        return Login("microsoft", self.email, cache)

    def provider(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> MicrosoftProvider:
        """The account's provider; `clock` is what it dates subscriptions by (calsync's)."""
        return MicrosoftProvider.from_token_cache(
            self.token_cache,
            self.home_account_id,
            client_id=CLIENT_ID,
            login_root=self.endpoints.tls_url,
            graph_root=f"{self.endpoints.url}v1.0",
            verify=self.endpoints.ca_path,
            on_cache_change=self._keep_cache,
            clock=clock,
            sleep=sleep,
        )

    # --------------------------------------------------------------- the person

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        answer = self.person.request(method, url, **kwargs)
        if answer.status_code == 401:
            # The person's token ran out (a test moved the emulator's clock): a new one.
            token = httpx.post(
                f"{self.authority}/oauth2/v2.0/token",
                data={
                    "client_id": CLIENT_ID,
                    "grant_type": "refresh_token",
                    "refresh_token": self._refresh_token,
                },
                verify=self.tls,
            ).json()
            self._refresh_token = token["refresh_token"]
            self.person.headers["authorization"] = f"Bearer {token['access_token']}"
            answer = self.person.request(method, url, **kwargs)
        assert answer.status_code < 300, f"{method} {url}: {answer.status_code} {answer.text}"
        return answer

    @staticmethod
    def _events(calendar_id: str) -> str:
        return f"/me/calendars/{quote(calendar_id, safe='')}/events"

    def new_calendar(self, name: str, *, read_only: bool = False) -> str:
        if read_only:
            # Someone else's calendar shared into the mailbox, to read only.
            made = self.admin.post(
                f"/emulator/accounts/{self.email}/calendars",
                json={"name": name, "can_edit": False},
            )
            assert made.status_code == 201, made.text
            return str(made.json()["id"])
        return str(self._call("POST", "/me/calendars", json={"name": name}).json()["id"])

    def add(self, calendar_id: str, event: PersonEvent) -> str:
        all_day = not isinstance(event.start, datetime)
        body: dict[str, Any] = {
            "subject": event.title,
            "start": _graph_time(event.start),
            "end": _graph_time(event.end),
            "isAllDay": all_day,
            "showAs": "free" if event.free else "busy",
        }
        if event.recurrence:
            body["recurrence"] = recurrence(event.recurrence, event.start)
        if event.cancelled or event.declined or event.tentative or event.attendees:
            # An invitation from someone else: only its organizer can cancel it.
            answer = "declined" if event.declined else "accepted"
            body.update(
                calendar_id=calendar_id,
                isOrganizer=False,
                organizer={"emailAddress": {"name": "Sam Lee", "address": "sam@fabrikam.example"}},
                isCancelled=event.cancelled,
                responseStatus={"response": "tentativelyAccepted" if event.tentative else answer},
                attendees=[
                    {"emailAddress": {"address": a}, "type": "required"} for a in event.attendees
                ],
            )
            made = self.admin.post(f"/emulator/accounts/{self.email}/events", json=body)
            assert made.status_code == 201, made.text
            return str(made.json()["id"])
        return str(self._call("POST", self._events(calendar_id), json=body).json()["id"])

    def move(self, calendar_id: str, event_id: str, start: datetime, end: datetime) -> None:
        url = f"{self._events(calendar_id)}/{quote(event_id, safe='')}"
        self._call("PATCH", url, json={"start": _graph_time(start), "end": _graph_time(end)})

    def retitle(self, calendar_id: str, event_id: str, title: str) -> None:
        url = f"{self._events(calendar_id)}/{quote(event_id, safe='')}"
        self._call("PATCH", url, json={"subject": title})

    def delete(self, calendar_id: str, event_id: str) -> None:
        self._call("DELETE", f"{self._events(calendar_id)}/{quote(event_id, safe='')}")

    def cancel_occurrence(self, calendar_id: str, series_id: str, start: datetime) -> None:
        url = f"{self._events(calendar_id)}/{quote(series_id, safe='')}/instances"
        window = {
            "startDateTime": (start - timedelta(days=1)).astimezone(UTC).isoformat(),
            "endDateTime": (start + timedelta(days=1)).astimezone(UTC).isoformat(),
            "$top": "100",
        }
        for item in self._call("GET", url, params=window).json()["value"]:
            if _read_time(item["start"], item["isAllDay"]) == start.astimezone(UTC):
                self._call("DELETE", f"/me/events/{quote(item['id'], safe='')}")
                return
        raise AssertionError(f"no occurrence of {series_id} starts at {start}")

    def move_occurrence(
        self,
        calendar_id: str,
        series_id: str,
        start: datetime,
        new_start: datetime,
        new_end: datetime,
    ) -> None:
        """Move one occurrence of a series (Graph makes it an exception)."""
        url = f"{self._events(calendar_id)}/{quote(series_id, safe='')}/instances"
        window = {
            "startDateTime": (start - timedelta(days=1)).astimezone(UTC).isoformat(),
            "endDateTime": (start + timedelta(days=1)).astimezone(UTC).isoformat(),
            "$top": "100",
        }
        for item in self._call("GET", url, params=window).json()["value"]:
            if _read_time(item["start"], item["isAllDay"]) == start.astimezone(UTC):
                body = {"start": _graph_time(new_start), "end": _graph_time(new_end)}
                self._call("PATCH", f"/me/events/{quote(item['id'], safe='')}", json=body)
                return
        raise AssertionError(f"no occurrence of {series_id} starts at {start}")

    def _pages(self, url: str, params: dict[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        answer = self._call("GET", url, params=params).json()
        found.extend(answer["value"])
        while "@odata.nextLink" in answer:
            answer = self._call("GET", answer["@odata.nextLink"]).json()
            found.extend(answer["value"])
        return found

    def marks(self, calendar_id: str) -> dict[str, str]:
        """Event id -> calsync's mark, for every marked event of the calendar."""
        marked = self._pages(
            self._events(calendar_id),
            {
                "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{MARK_ID}')",
                "$expand": f"singleValueExtendedProperties($filter=id eq '{MARK_ID}')",
                "$top": "500",
            },
        )
        return {
            item["id"]: prop["value"]
            for item in marked
            for prop in item.get("singleValueExtendedProperties") or []
        }

    def events(self, calendar_id: str) -> list[dict[str, object]]:
        marks = self.marks(calendar_id)
        now = datetime.now(UTC)
        view = self._pages(
            f"/me/calendars/{quote(calendar_id, safe='')}/calendarView",
            {
                "startDateTime": (now - timedelta(days=900)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endDateTime": (now + timedelta(days=900)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "$top": "500",
            },
        )
        return [
            {
                "id": item["id"],
                "title": item["subject"],
                "start": _read_time(item["start"], item["isAllDay"]),
                "end": _read_time(item["end"], item["isAllDay"]),
                "mark": marks.get(item["id"]),
                "all_day": item["isAllDay"],
                "free": item["showAs"] == "free",
                "cancelled": item["isCancelled"],
                "private": item["sensitivity"] == "private",
                "reminder": item["isReminderOn"],
                "attendees": [a["emailAddress"]["address"] for a in item["attendees"]],
                "series_id": item.get("seriesMasterId"),
                "transaction_id": item.get("transactionId"),
            }
            for item in view
        ]

    # ------------------------------------------------------------ the bad days

    def expire_cursor(self, calendar_id: str) -> None:
        answer = self.admin.post(
            f"/emulator/calendars/{quote(calendar_id, safe='')}/expire-cursors",
            json={"status": 410},
        )
        assert answer.status_code == 200, answer.text

    def fail_next(self, kind: ErrorKind, *, times: int = 1, retry_after: float = 0) -> None:
        if kind not in FAULTS:
            raise ValueError(f"Graph has no failure that means {kind.value}")
        method, status, reason = FAULTS[kind]
        if kind is ErrorKind.AUTH:
            times *= 2  # calsync refreshes once on a 401: the retry must fail too
        fault: dict[str, Any] = {"method": method, "status": status, "reason": reason}
        fault["times"] = times
        if kind is ErrorKind.TRANSIENT:
            # Graph says Retry-After in whole seconds.
            fault["retry_after"] = math.ceil(retry_after)
        answer = self.admin.post("/emulator/faults", json=fault)
        assert answer.status_code == 201, answer.text

    def refuse_login(self) -> None:
        answer = self.admin.post(f"/emulator/accounts/{self.email}/refuse-login")
        assert answer.status_code == 200, answer.text

    def close(self) -> None:
        self.person.close()
        self.admin.close()
