"""Writes through the real client: ids, duplicates, etags, preconditions, deletes, fields."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from googleapiclient.errors import HttpError

from tests.emulator_google.conftest import Emu, timed


def _error(call: Any) -> HttpError:
    with pytest.raises(HttpError) as caught:
        call.execute()
    return caught.value


def test_client_chosen_ids_are_validated_and_unique(emu: Emu) -> None:
    service = emu.service(emu.account())
    events = service.events()
    body = {"summary": "Busy", **timed("2025-03-03", "10:00", "11:00")}
    made = events.insert(calendarId="primary", body={**body, "id": "block0001abc"}).execute()
    assert made["id"] == "block0001abc"
    for bad in ("abc", "UPPERCASE1", "has_underscore", "wxyz12345", "a" * 1025):
        error = _error(events.insert(calendarId="primary", body={**body, "id": bad}))
        assert error.resp.status == 400, bad
        assert error.error_details[0]["reason"] == "invalid"
    assert events.insert(calendarId="primary", body={**body, "id": "a" * 1024}).execute()
    error = _error(events.insert(calendarId="primary", body={**body, "id": "block0001abc"}))
    assert error.resp.status == 409
    assert error.error_details[0]["reason"] == "duplicate"
    # A deleted event keeps its id: inserting it again is still a duplicate.
    events.delete(calendarId="primary", eventId="block0001abc").execute()
    error = _error(events.insert(calendarId="primary", body={**body, "id": "block0001abc"}))
    assert error.resp.status == 409


def test_etag_changes_on_every_write_and_preconditions_hold(emu: Emu) -> None:
    account = emu.account()
    service = emu.service(account)
    events = service.events()
    made = events.insert(
        calendarId="primary", body={"summary": "One", **timed("2025-03-03", "10:00", "11:00")}
    ).execute()
    patched = events.patch(
        calendarId="primary", eventId=made["id"], body={"summary": "Two"}
    ).execute()
    updated = events.update(
        calendarId="primary",
        eventId=made["id"],
        body={"summary": "Three", **timed("2025-03-03", "10:00", "11:00")},
    ).execute()
    assert len({made["etag"], patched["etag"], updated["etag"]}) == 3
    # If-Match with an old etag: 412 conditionNotMet, nothing changed.
    stale = events.patch(calendarId="primary", eventId=made["id"], body={"summary": "Four"})
    stale.headers["If-Match"] = made["etag"]
    error = _error(stale)
    assert error.resp.status == 412
    assert error.error_details[0]["reason"] == "conditionNotMet"
    fresh = events.patch(calendarId="primary", eventId=made["id"], body={"summary": "Four"})
    fresh.headers["If-Match"] = updated["etag"]
    assert fresh.execute()["summary"] == "Four"
    # If-None-Match with the current etag: 304 and no body.
    current = events.get(calendarId="primary", eventId=made["id"]).execute()
    answer = httpx.get(
        f"{emu.url}calendar/v3/calendars/primary/events/{made['id']}",
        headers={
            "authorization": f"Bearer {account.access_token}",
            "if-none-match": current["etag"],
        },
    )
    assert answer.status_code == 304
    assert answer.content == b""


def test_delete_then_get_404_410_and_restore(emu: Emu) -> None:
    service = emu.service(emu.account())
    events = service.events()
    made = events.insert(
        calendarId="primary", body={"summary": "Gone", **timed("2025-03-03", "10:00", "11:00")}
    ).execute()
    stale = events.delete(calendarId="primary", eventId=made["id"])
    stale.headers["If-Match"] = '"1"'
    assert _error(stale).resp.status == 412
    assert events.delete(calendarId="primary", eventId=made["id"]).execute() == ""
    assert events.get(calendarId="primary", eventId=made["id"]).execute()["status"] == "cancelled"
    error = _error(events.delete(calendarId="primary", eventId=made["id"]))
    assert (error.resp.status, error.error_details[0]["reason"]) == (410, "deleted")
    error = _error(events.get(calendarId="primary", eventId="nosuchevent1"))
    assert (error.resp.status, error.error_details[0]["reason"]) == (404, "notFound")
    error = _error(events.patch(calendarId="primary", eventId="nosuchevent1", body={}))
    assert error.resp.status == 404
    restored = events.patch(
        calendarId="primary", eventId=made["id"], body={"status": "confirmed"}
    ).execute()
    assert restored["status"] == "confirmed"
    assert [e["id"] for e in events.list(calendarId="primary").execute()["items"]] == [made["id"]]


def test_reader_calendar_refuses_writes_with_403(emu: Emu) -> None:
    emu.account(calendars=[{"summary": "Holidays", "id": "holidays0x@group.calendar.google.com"}])
    reader = emu.account(
        calendars=[
            {
                "summary": "Holidays",
                "id": "holidays0x@group.calendar.google.com",
                "access_role": "reader",
            }
        ]
    )
    error = _error(
        emu.service(reader)
        .events()
        .insert(
            calendarId="holidays0x@group.calendar.google.com",
            body={"summary": "Nope", **timed("2025-03-03", "10:00", "11:00")},
        )
    )
    assert error.resp.status == 403
    assert error.error_details[0]["reason"] == "requiredAccessLevel"


def test_fields_round_trip_and_server_rules(emu: Emu) -> None:
    account = emu.account()
    events = emu.service(account).events()
    made = events.insert(
        calendarId="primary",
        sendUpdates="none",
        body={
            "summary": "Busy",
            "transparency": "transparent",
            "visibility": "private",
            "extendedProperties": {"private": {"calsync": "block", "source": "abc"}},
            "attendees": [
                {"email": account.email, "responseStatus": "declined"},
                {"email": "guest@example.com"},
            ],
            **timed("2025-03-03", "10:00", "11:00", tz="America/New_York"),
        },
    ).execute()
    fetched = events.get(calendarId="primary", eventId=made["id"]).execute()
    assert fetched["transparency"] == "transparent"
    assert fetched["visibility"] == "private"
    assert fetched["extendedProperties"]["private"] == {"calsync": "block", "source": "abc"}
    me, guest = fetched["attendees"]
    assert me == {"email": account.email, "responseStatus": "declined", "self": True}
    assert guest == {"email": "guest@example.com", "responseStatus": "needsAction"}
    assert fetched["start"]["timeZone"] == "America/New_York"
    assert fetched["eventType"] == "default"
    assert fetched["status"] == "confirmed"
    # PATCH merges objects and replaces arrays whole.
    patched = events.patch(
        calendarId="primary",
        eventId=made["id"],
        sendUpdates="none",
        body={"extendedProperties": {"private": {"source": "xyz"}}, "attendees": []},
    ).execute()
    assert patched["extendedProperties"]["private"] == {"calsync": "block", "source": "xyz"}
    assert patched["attendees"] == []
    assert patched["summary"] == "Busy"
    # Working location is always public and free; event types never change.
    location = events.insert(
        calendarId="primary",
        body={
            "eventType": "workingLocation",
            "visibility": "private",
            "workingLocationProperties": {"type": "homeOffice", "homeOffice": {}},
            "start": {"date": "2025-03-04"},
            "end": {"date": "2025-03-05"},
        },
    ).execute()
    assert (location["visibility"], location["transparency"]) == ("public", "transparent")
    error = _error(
        events.patch(calendarId="primary", eventId=location["id"], body={"eventType": "default"})
    )
    assert error.resp.status == 400
    # The client library only sends known sendUpdates values; the emulator checks them too.
    raw = httpx.post(
        f"{emu.url}calendar/v3/calendars/primary/events",
        params={"sendUpdates": "sometimes"},
        json={"summary": "x", **timed("2025-03-03", "10:00", "11:00")},
        headers={"authorization": f"Bearer {account.access_token}"},
    )
    assert raw.status_code == 400


def test_all_day_and_bad_times(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    all_day = events.insert(
        calendarId="primary",
        body={"summary": "Holiday", "start": {"date": "2025-03-03"}, "end": {"date": "2025-03-05"}},
    ).execute()
    assert all_day["start"] == {"date": "2025-03-03"}
    for body in (
        {"summary": "no end", "start": {"date": "2025-03-03"}},
        {
            "summary": "mixed",
            "start": {"date": "2025-03-03"},
            **{"end": timed("2025-03-03", "10:00", "11:00")["end"]},
        },
        {"summary": "backwards", **timed("2025-03-03", "11:00", "10:00")},
    ):
        assert _error(events.insert(calendarId="primary", body=body)).resp.status == 400
