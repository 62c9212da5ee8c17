"""A mixed user end to end through the server: a Google account (the emulator) and a CalDAV
account (a real Radicale) connected through the API, the scheduler polling both every second.
Events in either become exact blocks in the other; moves, deletes, a recurring exception and
all-day events propagate both ways; disconnecting the CalDAV account takes its blocks out of
Google and calsync's blocks out of its calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from tests.server.conftest import ServerWorld
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer
from tests.support.drivers.connect import Span, blocks, own_events
from tests.support.waiting import wait_until
from tests.support.world import Cal, at

When = datetime | date


def instant(hours: float, days: int = 1) -> datetime:
    return datetime.fromisoformat(at(hours, days).replace("Z", "+00:00"))


def busy(start: float, end: float, days: int = 1) -> Span:
    return ("Busy", instant(start, days), instant(end, days))


def all_day(first: date, days: int) -> Span:
    return ("Busy", first, first + timedelta(days=days))


def ordered(spans: list[Span]) -> list[Span]:
    return sorted(spans, key=lambda s: (str(s[1]), str(s[2]), s[0]))


def _google_time(value: dict[str, str]) -> When:
    if "dateTime" in value:
        return datetime.fromisoformat(value["dateTime"]).astimezone(UTC)
    return date.fromisoformat(value["date"])


def google_blocks(world: ServerWorld, cal: Cal) -> list[Span]:
    return ordered(
        [
            (b["summary"], _google_time(b["start"]), _google_time(b["end"]))
            for b in world.blocks(cal)
        ]
    )


def settles(
    world: ServerWorld,
    google: Cal,
    driver: CalDAVDriver,
    caldav: Cal,
    in_google: list[Span],
    in_caldav: list[Span],
    what: str,
) -> None:
    """Both calendars come to hold exactly these blocks (within a few poll intervals)."""
    wanted = (ordered(in_google), ordered(in_caldav))
    wait_until(
        lambda: (google_blocks(world, google), blocks(driver, caldav)) == wanted,
        timeout=30,
        what=what,
    )


def google_event(
    world: ServerWorld, cal: Cal, title: str, start: When, end: When, **extra: Any
) -> str:
    def time(value: When) -> dict[str, str]:
        if isinstance(value, datetime):
            return {"dateTime": value.isoformat(), "timeZone": "UTC"}
        return {"date": value.isoformat()}

    made = world.insert(cal, summary=title, start=time(start), end=time(end), **extra)
    return str(made["id"])


def test_a_google_and_a_caldav_account_block_each_other_until_the_caldav_one_leaves(
    polling_world: ServerWorld, radicale: CalDAVServer, unique: str
) -> None:
    world = polling_world
    driver = CalDAVDriver(radicale)
    personal_url = driver.new_calendar("Personal")
    google = world.account(f"work-{unique}@example.com")["primary"]
    world.start(push=False)
    api: httpx.Client
    with world.api() as api:
        answer = api.post(
            "/api/v1/accounts/caldav",
            json={
                "url": radicale.url,
                "username": radicale.username,
                "password": radicale.password,
            },
        )
        assert answer.status_code == 201, answer.text
        listed = api.get("/api/v1/calendars").json()
        [mine] = [c for c in listed if c["provider_calendar_id"] == personal_url]
        caldav = Cal(mine["id"], personal_url, radicale.username)
        caldav_account = mine["account_id"]
        world.enable(api, google, caldav, include_all_day=True)

        # Events made on each side, timed, recurring and all-day, become exact blocks.
        service = world.service(google.email).events()
        board = google_event(world, google, "Board", instant(9), instant(10))
        gym = google_event(
            world,
            google,
            "Gym",
            instant(18),
            instant(19),
            recurrence=["RRULE:FREQ=DAILY;COUNT=3"],
        )
        holiday = instant(0, days=5).date()
        google_event(world, google, "Holiday", holiday, holiday + timedelta(days=1))
        dentist = driver.add(personal_url, PersonEvent("Dentist", instant(14), instant(15)))
        daily = driver.add(
            personal_url,
            PersonEvent("Daily", instant(8), instant(8.5), recurrence="FREQ=DAILY;COUNT=3"),
        )
        trip = instant(0, days=6).date()
        driver.add(personal_url, PersonEvent("Trip", trip, trip + timedelta(days=2)))
        settles(
            world,
            google,
            driver,
            caldav,
            in_google=[busy(14, 15), *(busy(8, 8.5, d) for d in (1, 2, 3)), all_day(trip, 2)],
            in_caldav=[busy(9, 10), *(busy(18, 19, d) for d in (1, 2, 3)), all_day(holiday, 1)],
            what="every event of each side as one exact block in the other",
        )

        # Moves and recurring exceptions, both ways.
        driver.move(personal_url, dentist, instant(16), instant(17))
        driver.cancel_occurrence(personal_url, daily, instant(8, days=2))
        service.patch(
            calendarId=google.provider_id,
            eventId=board,
            body={"start": {"dateTime": at(11)}, "end": {"dateTime": at(12)}},
        ).execute()
        driver_gym = GoogleSeries(world, google, gym)
        driver_gym.move(instant(18, days=2), instant(20, days=2), instant(21, days=2))
        settles(
            world,
            google,
            driver,
            caldav,
            in_google=[busy(16, 17), busy(8, 8.5, 1), busy(8, 8.5, 3), all_day(trip, 2)],
            in_caldav=[
                busy(11, 12),
                busy(18, 19, 1),
                busy(20, 21, 2),
                busy(18, 19, 3),
                all_day(holiday, 1),
            ],
            what="moves and a cancelled and a moved occurrence on each side",
        )

        # Deletes, both ways.
        driver.delete(personal_url, dentist)
        service.delete(calendarId=google.provider_id, eventId=board).execute()
        settles(
            world,
            google,
            driver,
            caldav,
            in_google=[busy(8, 8.5, 1), busy(8, 8.5, 3), all_day(trip, 2)],
            in_caldav=[busy(18, 19, 1), busy(20, 21, 2), busy(18, 19, 3), all_day(holiday, 1)],
            what="deletes on each side",
        )

        # Disconnecting the CalDAV account: its blocks leave Google, calsync's blocks leave
        # Radicale, and the person's own events stay where they are.
        gone = api.delete(f"/api/v1/accounts/{caldav_account}")
        assert gone.status_code == 200, gone.text
        settles(
            world,
            google,
            driver,
            caldav,
            in_google=[],
            in_caldav=[],
            what="no block of the CalDAV account in Google and none of calsync's in Radicale",
        )
        assert [a["provider"] for a in api.get("/api/v1/accounts").json()] == ["google"]
    assert own_events(driver, caldav) == ordered(
        [
            ("Daily", instant(8, 1), instant(8.5, 1)),
            ("Daily", instant(8, 3), instant(8.5, 3)),
            ("Trip", trip, trip + timedelta(days=2)),
        ]
    )


class GoogleSeries:
    """One recurring series in the user's Google calendar, as the person edits it."""

    def __init__(self, world: ServerWorld, cal: Cal, series_id: str) -> None:
        self.events = world.service(cal.email).events()
        self.cal = cal
        self.series_id = series_id

    def move(self, start: datetime, new_start: datetime, new_end: datetime) -> None:
        items = self.events.instances(
            calendarId=self.cal.provider_id, eventId=self.series_id
        ).execute()["items"]
        [occurrence] = [i for i in items if _google_time(i["start"]) == start]
        self.events.patch(
            calendarId=self.cal.provider_id,
            eventId=occurrence["id"],
            body={
                "start": {"dateTime": new_start.isoformat()},
                "end": {"dateTime": new_end.isoformat()},
            },
        ).execute()
