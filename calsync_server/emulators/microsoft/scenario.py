"""Seeded worlds for the Graph emulator: `empty`, and `demo` (Alex Morgan's Microsoft 365 work
mailbox, a realistic fortnight around the emulator's today) with a live mode."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import date, datetime, time, timedelta
from typing import Any

from calsync_server.emulators.microsoft.store import Item, Mailbox, Store
from calsync_server.emulators.microsoft.zones import zone_info

SCENARIOS = ("empty", "demo")
# The same person as the Google emulator's demo, here at work on Microsoft 365.
WORK = "alex.morgan@contoso.example"
NAME = "Alex Morgan"
ZONE = "GMT Standard Time"
ORGANIZER = {"emailAddress": {"name": "Jordan Lee", "address": "jordan.lee@contoso.example"}}
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


def _at(day: date, hour: int, minute: int) -> dict[str, str]:
    return {"dateTime": datetime.combine(day, time(hour, minute)).isoformat(), "timeZone": ZONE}


def _day(day: date) -> dict[str, str]:
    return {"dateTime": f"{day.isoformat()}T00:00:00", "timeZone": ZONE}


def seed(store: Store, scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if scenario == "demo":
        _seed_demo(store, store.now().astimezone(zone_info(ZONE)).date())


def _occurrence_on(store: Store, master: Item, day: date) -> Item:
    begin = datetime.combine(day, time(0, 0), zone_info(ZONE))
    items = store.series_items(master.record, begin, begin + timedelta(days=1))
    return next(i for i in items if i.kind == "occurrence")


def _seed_demo(store: Store, today: date) -> None:
    monday = today - timedelta(days=today.weekday())
    start = monday - timedelta(days=7)  # a fortnight around today: last week to next week
    mailbox, _, _ = store.create_mailbox(
        WORK,
        NAME,
        ZONE,
        [
            {"name": "Projects", "color": "lightGreen"},
            {"name": "United Kingdom holidays", "can_edit": False, "color": "lightGray"},
        ],
    )
    projects, holidays = mailbox.calendars[1], mailbox.calendars[2]

    def add(body: dict[str, Any], calendar: str | None = None) -> Item:
        return store.create_event(mailbox, calendar, body, trusted=True)[0]

    standup = add(
        {
            "subject": "Team stand-up",
            "start": _at(start, 9, 30),
            "end": _at(start, 9, 45),
            "isOnlineMeeting": True,
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": WEEKDAYS},
                "range": {"type": "noEnd", "startDate": start.isoformat()},
            },
        }
    )
    one_to_one = add(
        {
            "subject": "1:1 with Sam",
            "start": _at(start + timedelta(days=2), 14, 0),
            "end": _at(start + timedelta(days=2), 14, 30),
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["wednesday"]},
                "range": {"type": "noEnd", "startDate": start.isoformat()},
            },
        }
    )
    # A moved and a cancelled occurrence, so exceptions show up in every view.
    moved_day = monday + timedelta(days=1)
    moved = _occurrence_on(store, standup, moved_day)
    store.update_event(
        mailbox,
        moved.id,
        {"start": _at(moved_day, 10, 0), "end": _at(moved_day, 10, 15)},
        trusted=True,
    )
    cancelled = _occurrence_on(store, one_to_one, monday + timedelta(days=9))
    store.delete_event(mailbox, cancelled.id, trusted=True)
    add(
        {
            "subject": "Quarterly business review",
            "organizer": ORGANIZER,
            "isOrganizer": False,
            "responseStatus": {"response": "declined"},
            "attendees": [
                {"type": "required", **ORGANIZER},
                {"type": "required", "emailAddress": {"name": NAME, "address": WORK}},
            ],
            "start": _at(monday + timedelta(days=4), 15, 0),
            "end": _at(monday + timedelta(days=4), 16, 30),
        }
    )
    add(
        {
            "subject": "Architecture guild",
            "organizer": ORGANIZER,
            "isOrganizer": False,
            "responseStatus": {"response": "tentativelyAccepted"},
            "showAs": "tentative",
            "start": _at(monday + timedelta(days=3), 11, 0),
            "end": _at(monday + timedelta(days=3), 12, 0),
        }
    )
    add(
        {
            "subject": "Vendor sync (cancelled by organizer)",
            "organizer": ORGANIZER,
            "isOrganizer": False,
            "isCancelled": True,
            "responseStatus": {"response": "accepted"},
            "start": _at(monday + timedelta(days=8), 16, 0),
            "end": _at(monday + timedelta(days=8), 16, 30),
        }
    )
    add(
        {
            "subject": "Lunch & learn (optional)",
            "showAs": "free",
            "start": _at(monday + timedelta(days=2), 12, 0),
            "end": _at(monday + timedelta(days=2), 13, 0),
        }
    )
    add(
        {
            "subject": "Out of office",
            "showAs": "oof",
            "isAllDay": True,
            "start": _day(monday + timedelta(days=10)),
            "end": _day(monday + timedelta(days=12)),
        }
    )
    add(
        {
            "subject": "Working from the Manchester office",
            "showAs": "workingElsewhere",
            "isAllDay": True,
            "start": _day(monday + timedelta(days=4)),
            "end": _day(monday + timedelta(days=5)),
        }
    )
    add(
        {
            "subject": "Focus: quarterly planning",
            "sensitivity": "private",
            "start": _at(monday + timedelta(days=3), 13, 0),
            "end": _at(monday + timedelta(days=3), 16, 0),
        }
    )
    add(
        {
            "subject": "Release 2.0",
            "isAllDay": True,
            "showAs": "free",
            "start": _day(monday + timedelta(days=8)),
            "end": _day(monday + timedelta(days=9)),
        },
        projects,
    )
    add(
        {
            "subject": "Design review",
            "start": _at(monday + timedelta(days=1), 15, 0),
            "end": _at(monday + timedelta(days=1), 16, 0),
        },
        projects,
    )
    add(
        {
            "subject": "Bank holiday",
            "isAllDay": True,
            "showAs": "free",
            "start": _day(monday + timedelta(days=7)),
            "end": _day(monday + timedelta(days=8)),
        },
        holidays,
    )


class LiveChanges:
    """`--live`: every few seconds a new, moved or deleted event, so the demo shows sync."""

    def __init__(self, store: Store, interval_s: float, seed_value: int = 7) -> None:
        self.store = store
        self.interval_s = interval_s
        self.random = random.Random(seed_value)
        self.created: list[tuple[str, str]] = []  # (calendar id, immutable event id)
        self.steps = itertools.count(1)

    def _mailbox(self) -> Mailbox:
        return self.store.mailbox_of(WORK)

    def step(self) -> str:
        """Make one change and say what it was."""
        number = next(self.steps)
        mailbox = self._mailbox()
        action = (
            "create" if len(self.created) < 2 else self.random.choice(["create", "move", "delete"])
        )
        if action == "create":
            calendar = self.random.choice(mailbox.calendars[:2])
            day = self.store.now().astimezone(zone_info(ZONE)).date()
            day += timedelta(days=self.random.randint(0, 6))
            hour = self.random.randint(8, 17)
            item, _ = self.store.create_event(
                mailbox,
                calendar,
                {
                    "subject": f"Live change {number}",
                    "showAs": self.random.choice(["busy", "busy", "tentative", "free"]),
                    "start": _at(day, hour, 0),
                    "end": _at(day, hour, 45),
                },
                trusted=True,
            )
            self.created.append((calendar, item.id))
            return f"created {item.id} in {calendar}"
        calendar, event_id = self.created.pop(self.random.randrange(len(self.created)))
        if action == "move":
            item = self.store.find(mailbox, event_id)
            shift = timedelta(minutes=30 * self.random.choice([-2, -1, 1, 2]))
            self.store.update_event(
                mailbox,
                event_id,
                {
                    "start": {"dateTime": (item.start + shift).isoformat()[:19], "timeZone": "UTC"},
                    "end": {"dateTime": (item.end + shift).isoformat()[:19], "timeZone": "UTC"},
                },
                trusted=True,
            )
            self.created.append((calendar, event_id))
            return f"moved {event_id} in {calendar}"
        self.store.delete_event(mailbox, event_id, trusted=True)
        return f"deleted {event_id} in {calendar}"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.step()
