"""Recurring events: expansion, instance ids, exceptions, and how series changes sync."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError

from tests.emulator_google.conftest import Emu

WINDOW = {"timeMin": "2025-03-01T00:00:00Z", "timeMax": "2025-03-15T00:00:00Z"}


def _weekly(events: Any) -> dict[str, Any]:
    # Mondays and Wednesdays 09:00 Berlin (08:00 UTC in March, before DST).
    return events.insert(
        calendarId="primary",
        body={
            "summary": "Stand-up",
            "start": {"dateTime": "2025-03-03T09:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2025-03-03T09:15:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE"],
        },
    ).execute()


def test_single_events_expands_with_google_instance_ids(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    master = _weekly(events)
    items = events.list(
        calendarId="primary", singleEvents=True, orderBy="startTime", **WINDOW
    ).execute()["items"]
    assert [i["id"] for i in items] == [
        f"{master['id']}_20250303T080000Z",
        f"{master['id']}_20250305T080000Z",
        f"{master['id']}_20250310T080000Z",
        f"{master['id']}_20250312T080000Z",
    ]
    first = items[0]
    assert first["recurringEventId"] == master["id"]
    assert first["originalStartTime"] == first["start"]
    assert first["start"]["dateTime"] == "2025-03-03T09:00:00+01:00"
    assert "recurrence" not in first
    # Without singleEvents the master comes back with its rule.
    plain = events.list(calendarId="primary", **WINDOW).execute()["items"]
    assert [(i["id"], i["recurrence"]) for i in plain] == [
        (master["id"], ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE"])
    ]


def test_all_day_series_instance_ids_are_dates(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    master = events.insert(
        calendarId="primary",
        body={
            "summary": "Bins",
            "start": {"date": "2025-03-04"},
            "end": {"date": "2025-03-05"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=2"],
        },
    ).execute()
    items = events.list(calendarId="primary", singleEvents=True).execute()["items"]
    assert [(i["id"], i["start"]) for i in items] == [
        (f"{master['id']}_20250304", {"date": "2025-03-04"}),
        (f"{master['id']}_20250311", {"date": "2025-03-11"}),
    ]


def test_moved_and_cancelled_instances_are_exceptions(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    master = _weekly(events)
    moved_id = f"{master['id']}_20250305T080000Z"
    cancelled_id = f"{master['id']}_20250310T080000Z"
    events.patch(
        calendarId="primary",
        eventId=moved_id,
        body={
            "start": {"dateTime": "2025-03-05T11:00:00+01:00"},
            "end": {"dateTime": "2025-03-05T11:15:00+01:00"},
        },
    ).execute()
    events.delete(calendarId="primary", eventId=cancelled_id).execute()
    items = events.list(calendarId="primary", singleEvents=True, **WINDOW).execute()["items"]
    by_id = {i["id"]: i for i in items}
    assert cancelled_id not in by_id
    assert by_id[moved_id]["start"]["dateTime"] == "2025-03-05T11:00:00+01:00"
    assert by_id[moved_id]["originalStartTime"]["dateTime"] == "2025-03-05T09:00:00+01:00"
    with_deleted = events.list(
        calendarId="primary", singleEvents=True, showDeleted=True, **WINDOW
    ).execute()["items"]
    gone = next(i for i in with_deleted if i["id"] == cancelled_id)
    assert gone["status"] == "cancelled"
    assert gone["recurringEventId"] == master["id"]
    assert gone["originalStartTime"]["dateTime"] == "2025-03-10T09:00:00+01:00"
    # The instance can be fetched by id, like any event.
    fetched = events.get(calendarId="primary", eventId=f"{master['id']}_20250312T080000Z").execute()
    assert fetched["recurringEventId"] == master["id"]


def test_changing_a_series_returns_its_instances_in_the_next_sync(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    master = _weekly(events)
    token = events.list(calendarId="primary", singleEvents=True, **WINDOW).execute()[
        "nextSyncToken"
    ]
    events.patch(
        calendarId="primary", eventId=master["id"], body={"summary": "Daily sync"}
    ).execute()
    items = events.list(calendarId="primary", singleEvents=True, syncToken=token).execute()
    # The token kept the window: the four instances inside it, renamed.
    assert [i["summary"] for i in items["items"]] == ["Daily sync"] * 4
    assert all(i["recurringEventId"] == master["id"] for i in items["items"])
    events.delete(calendarId="primary", eventId=master["id"]).execute()
    after = events.list(
        calendarId="primary", singleEvents=True, syncToken=items["nextSyncToken"]
    ).execute()["items"]
    assert len(after) == 4
    for item in after:
        assert item["status"] == "cancelled"
        assert item["recurringEventId"] == master["id"]
        assert "originalStartTime" in item


def test_sync_token_remembers_single_events(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    token = events.list(calendarId="primary", singleEvents=True).execute()["nextSyncToken"]
    master = _weekly(events)
    # Asking the other question with this token is refused...
    with pytest.raises(HttpError) as caught:
        events.list(calendarId="primary", syncToken=token).execute()
    assert caught.value.resp.status == 400
    # ...and an open-ended series stays bounded.
    items = events.list(calendarId="primary", singleEvents=True, syncToken=token).execute()["items"]
    assert 0 < len(items) <= 1000
    assert all(i["recurringEventId"] == master["id"] for i in items)


def test_exdate_and_until_are_honoured(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    events.insert(
        calendarId="primary",
        body={
            "summary": "Daily",
            "start": {"dateTime": "2025-03-03T10:00:00Z"},
            "end": {"dateTime": "2025-03-03T10:30:00Z"},
            "recurrence": ["RRULE:FREQ=DAILY;UNTIL=20250306T100000Z", "EXDATE:20250304T100000Z"],
        },
    ).execute()
    items = events.list(calendarId="primary", singleEvents=True).execute()["items"]
    assert [i["start"]["dateTime"][:10] for i in items] == [
        "2025-03-03",
        "2025-03-05",
        "2025-03-06",
    ]
