"""Seeded worlds: `empty`, `demo` (two accounts, a realistic fortnight) and `personal` (the
personal account alone, for the three-provider demo), with a live mode."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from calsync_server.emulators.google.store import Store

SCENARIOS = ("empty", "demo", "personal")
WORK = "alex.morgan@work.example.com"
PERSONAL = "alex.morgan@personal.example.com"
WORK_TZ = "Europe/Berlin"
PERSONAL_TZ = "America/New_York"
PROJECTS = "projects0demo0calendar@group.calendar.google.com"
HOLIDAYS = "holidays0demo0calendar@group.calendar.google.com"
FAMILY = "family0demo0calendar@group.calendar.google.com"


def _at(day: date, hour: int, minute: int, tz: str) -> dict[str, str]:
    moment = datetime.combine(day, time(hour, minute), ZoneInfo(tz))
    return {"dateTime": moment.isoformat(), "timeZone": tz}


def _day(day: date) -> dict[str, str]:
    return {"date": day.isoformat()}


def seed(store: Store, scenario: str, today: date | None = None) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if scenario != "empty":
        _seed_demo(store, today or datetime.now(UTC).date(), whole=scenario == "demo")


def _seed_demo(store: Store, today: date, *, whole: bool = True) -> None:
    """`whole`: both accounts and Family; else the personal calendar alone (the three-provider
    demo keeps Alex's work on Microsoft 365 and the family's calendar on CalDAV)."""
    monday = today - timedelta(days=today.weekday())
    start = monday - timedelta(days=7)  # a fortnight around today: last week to next week
    if whole:
        store.create_account(
            WORK,
            "Alex Morgan",
            WORK_TZ,
            [
                {
                    "summary": "Projects",
                    "id": PROJECTS,
                    "access_role": "owner",
                    "time_zone": WORK_TZ,
                },
                {"summary": "Company holidays", "id": HOLIDAYS, "access_role": "reader"},
            ],
        )
    family = {"summary": "Family", "id": FAMILY, "access_role": "owner", "time_zone": PERSONAL_TZ}
    store.create_account(PERSONAL, "Alex Morgan", PERSONAL_TZ, [family] if whole else [])
    if whole:
        _seed_work(store, monday, start)
    _seed_personal(store, monday, start, family=whole)


def _seed_work(store: Store, monday: date, start: date) -> None:
    def add(owner: str, calendar: str, body: dict[str, Any]) -> dict[str, Any]:
        return store.insert_event(owner, calendar, body, trusted=True)

    standup = add(
        WORK,
        WORK,
        {
            "summary": "Team stand-up",
            "start": _at(start, 9, 30, WORK_TZ),
            "end": _at(start, 9, 45, WORK_TZ),
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"],
        },
    )
    one_to_one = add(
        WORK,
        WORK,
        {
            "summary": "1:1 with Sam",
            "start": _at(start + timedelta(days=2), 14, 0, WORK_TZ),
            "end": _at(start + timedelta(days=2), 14, 30, WORK_TZ),
            "recurrence": ["RRULE:FREQ=WEEKLY"],
        },
    )
    # A moved and a cancelled instance, so exceptions show up in every list.
    moved_day = monday + timedelta(days=1)
    moved = _at(moved_day, 9, 30, WORK_TZ)["dateTime"]
    moved_id = f"{standup['id']}_{datetime.fromisoformat(moved).astimezone(UTC):%Y%m%dT%H%M%SZ}"
    store.update_event(
        WORK,
        WORK,
        moved_id,
        {"start": _at(moved_day, 10, 0, WORK_TZ), "end": _at(moved_day, 10, 15, WORK_TZ)},
        patch=True,
    )
    cancelled = _at(monday + timedelta(days=9), 14, 0, WORK_TZ)["dateTime"]
    cancelled_utc = datetime.fromisoformat(cancelled).astimezone(UTC)
    store.delete_event(WORK, WORK, f"{one_to_one['id']}_{cancelled_utc:%Y%m%dT%H%M%SZ}")
    for offset in range(0, 14):
        day = start + timedelta(days=offset)
        if day.weekday() < 5:
            add(
                WORK,
                WORK,
                {
                    "summary": "Office" if day.weekday() < 3 else "Home",
                    "eventType": "workingLocation",
                    "start": _day(day),
                    "end": _day(day + timedelta(days=1)),
                    "workingLocationProperties": (
                        {"type": "officeLocation", "officeLocation": {"label": "Berlin HQ"}}
                        if day.weekday() < 3
                        else {"type": "homeOffice", "homeOffice": {}}
                    ),
                },
            )
    add(
        WORK,
        WORK,
        {
            "summary": "Focus time",
            "eventType": "focusTime",
            "start": _at(monday + timedelta(days=3), 13, 0, WORK_TZ),
            "end": _at(monday + timedelta(days=3), 16, 0, WORK_TZ),
            "focusTimeProperties": {"autoDeclineMode": "declineOnlyNewConflictingInvitations"},
        },
    )
    add(
        WORK,
        WORK,
        {
            "summary": "Out of office",
            "eventType": "outOfOffice",
            "start": _at(monday + timedelta(days=11), 0, 0, WORK_TZ),
            "end": _at(monday + timedelta(days=12), 0, 0, WORK_TZ),
            "outOfOfficeProperties": {"autoDeclineMode": "declineAllConflictingInvitations"},
        },
    )
    add(
        WORK,
        WORK,
        {
            "summary": "Lunch & learn (optional)",
            "transparency": "transparent",
            "start": _at(monday + timedelta(days=2), 12, 0, WORK_TZ),
            "end": _at(monday + timedelta(days=2), 13, 0, WORK_TZ),
        },
    )
    add(
        WORK,
        WORK,
        {
            "summary": "Quarterly business review",
            "organizer": {"email": "jordan.lee@work.example.com", "displayName": "Jordan Lee"},
            "attendees": [
                {
                    "email": "jordan.lee@work.example.com",
                    "organizer": True,
                    "responseStatus": "accepted",
                },
                {"email": WORK, "responseStatus": "declined"},
            ],
            "start": _at(monday + timedelta(days=4), 15, 0, WORK_TZ),
            "end": _at(monday + timedelta(days=4), 16, 30, WORK_TZ),
        },
    )
    add(
        WORK,
        PROJECTS,
        {
            "summary": "Release 2.0",
            "start": _day(monday + timedelta(days=8)),
            "end": _day(monday + timedelta(days=9)),
        },
    )
    add(
        WORK,
        PROJECTS,
        {
            "summary": "Design review",
            "visibility": "private",
            "start": _at(monday + timedelta(days=1), 15, 0, WORK_TZ),
            "end": _at(monday + timedelta(days=1), 16, 0, WORK_TZ),
        },
    )
    # The holidays calendar is shared read-only: only the scenario (trusted) writes to it.
    for offset, name in ((4, "Founders' day"), (10, "Summer bank holiday")):
        add(
            WORK,
            HOLIDAYS,
            {
                "summary": name,
                "transparency": "transparent",
                "start": _day(monday + timedelta(days=offset)),
                "end": _day(monday + timedelta(days=offset + 1)),
            },
        )


def _seed_personal(store: Store, monday: date, start: date, *, family: bool) -> None:
    def add(owner: str, calendar: str, body: dict[str, Any]) -> dict[str, Any]:
        return store.insert_event(owner, calendar, body, trusted=True)

    add(
        PERSONAL,
        PERSONAL,
        {
            "summary": "Yoga",
            "start": _at(start + timedelta(days=1), 18, 30, PERSONAL_TZ),
            "end": _at(start + timedelta(days=1), 19, 30, PERSONAL_TZ),
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=TU,TH"],
        },
    )
    add(
        PERSONAL,
        PERSONAL,
        {
            "summary": "Dentist",
            "start": _at(monday + timedelta(days=3), 8, 0, PERSONAL_TZ),
            "end": _at(monday + timedelta(days=3), 9, 0, PERSONAL_TZ),
        },
    )
    if not family:
        return
    add(
        PERSONAL,
        FAMILY,
        {
            "summary": "Weekend trip",
            "start": _day(monday + timedelta(days=5)),
            "end": _day(monday + timedelta(days=7)),
        },
    )
    add(
        PERSONAL,
        FAMILY,
        {
            "summary": "School pick-up",
            "start": _at(start, 15, 0, PERSONAL_TZ),
            "end": _at(start, 15, 30, PERSONAL_TZ),
            "recurrence": [
                f"RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;UNTIL={start + timedelta(days=20):%Y%m%d}"
            ],
        },
    )


class LiveChanges:
    """`--live`: every few seconds a new, moved or deleted event, so the demo shows sync."""

    def __init__(self, store: Store, interval_s: float, seed_value: int = 7) -> None:
        self.store = store
        self.interval_s = interval_s
        self.random = random.Random(seed_value)
        self.created: list[tuple[str, str, str]] = []  # (owner, calendar, event id)
        self.steps = itertools.count(1)

    def step(self) -> str:
        """Make one change and say what it was."""
        number = next(self.steps)
        action = (
            "create" if len(self.created) < 2 else self.random.choice(["create", "move", "delete"])
        )
        if action == "create":
            places = [
                (WORK, WORK, WORK_TZ),
                (WORK, PROJECTS, WORK_TZ),
                (PERSONAL, PERSONAL, PERSONAL_TZ),
            ]
            # The `personal` scenario has no work account: its changes are all personal.
            owner, calendar, tz = self.random.choice(
                [p for p in places if p[0] in self.store.accounts]
            )
            day = datetime.now(UTC).date() + timedelta(days=self.random.randint(0, 6))
            hour = self.random.randint(8, 17)
            event = self.store.insert_event(
                owner,
                calendar,
                {
                    "summary": f"Live change {number}",
                    "start": _at(day, hour, 0, tz),
                    "end": _at(day, hour, 45, tz),
                },
                trusted=True,
            )
            self.created.append((owner, calendar, str(event["id"])))
            return f"created {event['id']} in {calendar}"
        owner, calendar, event_id = self.created.pop(self.random.randrange(len(self.created)))
        if action == "move":
            event = self.store.get_event(owner, calendar, event_id)
            shift = timedelta(minutes=30 * self.random.choice([-2, -1, 1, 2]))
            start = datetime.fromisoformat(event["start"]["dateTime"]) + shift
            end = datetime.fromisoformat(event["end"]["dateTime"]) + shift
            tz = event["start"].get("timeZone", "UTC")
            self.store.update_event(
                owner,
                calendar,
                event_id,
                {
                    "start": {"dateTime": start.isoformat(), "timeZone": tz},
                    "end": {"dateTime": end.isoformat(), "timeZone": tz},
                },
                patch=True,
                trusted=True,
            )
            self.created.append((owner, calendar, event_id))
            return f"moved {event_id} in {calendar}"
        self.store.delete_event(owner, calendar, event_id, trusted=True)
        return f"deleted {event_id} in {calendar}"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.step()
