"""The person's hands in Google: the emulator's admin API and the real Calendar client.

Each calendar the driver makes belongs to an emulator account of its own (the emulator makes
calendars with their account); the provider is built for the account of the newest calendar,
which is how the contract suite uses a driver: calendar first, then the provider.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from google.oauth2.credentials import Credentials

from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.providers.credentials import GoogleOAuth
from calsync_server.providers.google import SCOPES, token_uri
from calsync_server.providers.google.provider import GoogleProvider
from calsync_server.providers.model import ErrorKind
from calsync_server.providers.retry import RetryPolicy
from tests.support.drivers.base import Login, PersonEvent
from tests.support.google_service import calendar_service

# Retries in tests wait what the provider says (Retry-After), else next to nothing.
QUICK_RETRY = RetryPolicy(attempts=4, base_seconds=0.01, max_seconds=2.0)
_accounts = itertools.count(1)


def _time(value: datetime | date) -> dict[str, str]:
    if isinstance(value, datetime) and isinstance(value.tzinfo, ZoneInfo):
        # A zoned series keeps its wall-clock time across a DST change, as the person meant.
        return {"dateTime": value.replace(tzinfo=None).isoformat(), "timeZone": value.tzinfo.key}
    if isinstance(value, datetime):
        return {"dateTime": value.astimezone(UTC).isoformat(), "timeZone": "UTC"}
    return {"date": value.isoformat()}


def _read_time(value: dict[str, Any]) -> datetime | date:
    if "dateTime" in value:
        return datetime.fromisoformat(value["dateTime"])
    return date.fromisoformat(value["date"])


class GoogleDriver:
    name = "google"

    def __init__(self, emulator: RunningEmulator, tag: str) -> None:
        self.emulator = emulator
        self.tag = tag
        self.admin = httpx.Client(base_url=emulator.url, timeout=10)
        self._tokens: dict[str, tuple[str, str]] = {}  # calendar id -> (access, refresh)
        self._emails: dict[str, str] = {}  # calendar id -> its emulator account's address
        self._services: dict[str, Any] = {}
        self._latest: str | None = None

    def close(self) -> None:
        for service in self._services.values():
            service.close()
        self.admin.delete("/emulator/faults")
        self.admin.close()

    def new_calendar(self, name: str, *, read_only: bool = False) -> str:
        email = f"{self.tag}-{next(_accounts)}@example.com"
        role = "reader" if read_only else "owner"
        answer = self.admin.post(
            "/emulator/accounts",
            json={"email": email, "calendars": [{"summary": name, "access_role": role}]},
        )
        answer.raise_for_status()
        body = answer.json()
        calendar_id = str(body["calendars"][1]["id"])
        self._tokens[calendar_id] = (body["access_token"], body["refresh_token"])
        self._emails[calendar_id] = email
        self._latest = calendar_id
        return calendar_id

    def login(self, calendar_id: str) -> Login:
        access, refresh = self._tokens[calendar_id]
        return Login(
            "google",
            self._emails[calendar_id],
            GoogleOAuth(access_token=access, refresh_token=refresh),
        )

    def provider(self, *, sleep: Callable[[float], None] = time.sleep) -> GoogleProvider:
        assert self._latest is not None, "make a calendar first"
        access, refresh = self._tokens[self._latest]
        credentials = Credentials(  # type: ignore[no-untyped-call]
            token=access,
            refresh_token=refresh,
            token_uri=token_uri(self.emulator.url),
            client_id="calsync",
            scopes=list(SCOPES),
        )
        return GoogleProvider(
            credentials, root_url=self.emulator.url, retry=QUICK_RETRY, sleep=sleep
        )

    def _events(self, calendar_id: str) -> Any:
        if calendar_id not in self._services:
            self._services[calendar_id] = calendar_service(
                self.emulator.url, self._tokens[calendar_id][0]
            )
        return self._services[calendar_id].events()

    def add(self, calendar_id: str, event: PersonEvent) -> str:
        body: dict[str, Any] = {
            "summary": event.title,
            "start": _time(event.start),
            "end": _time(event.end),
        }
        if event.free:
            body["transparency"] = "transparent"
        if event.declined or event.tentative or event.attendees:
            answer = "declined" if event.declined else "tentative" if event.tentative else None
            body["attendees"] = [
                {"email": "boss@example.com", "organizer": True, "responseStatus": "accepted"},
                *({"email": a, "responseStatus": "needsAction"} for a in event.attendees),
            ]
            if answer:
                # Google marks as "self" the attendee whose address is the calendar's id.
                body["attendees"].append({"email": calendar_id, "responseStatus": answer})
        if event.recurrence:
            body["recurrence"] = [f"RRULE:{event.recurrence}"]
        made = self._events(calendar_id).insert(calendarId=calendar_id, body=body).execute()
        return str(made["id"])

    def move(self, calendar_id: str, event_id: str, start: datetime, end: datetime) -> None:
        body = {"start": _time(start), "end": _time(end)}
        self._events(calendar_id).patch(
            calendarId=calendar_id, eventId=event_id, body=body
        ).execute()

    def retitle(self, calendar_id: str, event_id: str, title: str) -> None:
        self._events(calendar_id).patch(
            calendarId=calendar_id, eventId=event_id, body={"summary": title}
        ).execute()

    def delete(self, calendar_id: str, event_id: str) -> None:
        self._events(calendar_id).delete(calendarId=calendar_id, eventId=event_id).execute()

    def _occurrence(self, calendar_id: str, series_id: str, start: datetime) -> str:
        """The id of the series' occurrence starting at ``start``: looked for around it, as
        Google expands a series only so far past its own today without a range."""
        instances = (
            self._events(calendar_id)
            .instances(
                calendarId=calendar_id,
                eventId=series_id,
                timeMin=(start - timedelta(days=1)).isoformat(),
                timeMax=(start + timedelta(days=1)).isoformat(),
            )
            .execute()["items"]
        )
        [occurrence] = [i for i in instances if _read_time(i["start"]) == start]
        return str(occurrence["id"])

    def cancel_occurrence(self, calendar_id: str, series_id: str, start: datetime) -> None:
        self.delete(calendar_id, self._occurrence(calendar_id, series_id, start))

    def move_occurrence(
        self,
        calendar_id: str,
        series_id: str,
        start: datetime,
        new_start: datetime,
        new_end: datetime,
    ) -> None:
        self.move(calendar_id, self._occurrence(calendar_id, series_id, start), new_start, new_end)

    def events(self, calendar_id: str) -> list[dict[str, object]]:
        items = (
            self._events(calendar_id)
            .list(calendarId=calendar_id, singleEvents=True, maxResults=2500)
            .execute()["items"]
        )
        return [
            {
                "id": item["id"],
                "title": item.get("summary", ""),
                "start": _read_time(item["start"]),
                "end": _read_time(item["end"]),
                "mark": ((item.get("extendedProperties") or {}).get("private") or {}).get(
                    "calsync_source"
                ),
            }
            for item in items
            if item.get("status") != "cancelled"
        ]

    def expire_cursor(self, calendar_id: str) -> None:
        self.admin.post(f"/emulator/calendars/{calendar_id}/expire-sync-tokens").raise_for_status()

    def fail_next(self, kind: ErrorKind, *, times: int = 1, retry_after: float = 0) -> None:
        assert kind is ErrorKind.TRANSIENT, "the Google driver injects transient faults"
        fault = {"method": "*", "status": 429, "reason": "rateLimitExceeded", "times": times}
        if retry_after:
            fault["retry_after"] = max(1, round(retry_after))
        self.admin.post("/emulator/faults", json=fault).raise_for_status()

    def refuse_login(self) -> None:
        assert self._latest is not None
        access, refresh = self._tokens[self._latest]
        for token in (refresh, access):
            self.admin.post("/revoke", params={"token": token})
