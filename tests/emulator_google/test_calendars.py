"""calendarList and calendars through the real client: ids, roles, colours, primary."""

from __future__ import annotations

import pytest
from googleapiclient.errors import HttpError

from tests.emulator_google.conftest import Emu


def test_primary_calendar_is_the_email_and_others_get_group_ids(emu: Emu) -> None:
    account = emu.account(calendars=[{"summary": "Projects"}])
    assert [c["summary"] for c in account.calendars] == [account.email, "Projects"]
    service = emu.service(account)
    items = service.calendarList().list().execute()["items"]
    assert [i["id"] for i in items] == [account.email, account.calendars[1]["id"]]
    assert items[1]["id"].endswith("@group.calendar.google.com")
    primary, projects = items
    assert primary["primary"] is True
    assert "primary" not in projects
    for entry in items:
        assert entry["accessRole"] == "owner"
        assert entry["backgroundColor"].startswith("#")
        assert entry["timeZone"]
    assert projects["summary"] == "Projects"


def test_reader_calendar_is_listed_with_its_role_and_shared_between_accounts(emu: Emu) -> None:
    owner = emu.account(
        calendars=[{"summary": "Team", "id": "team0shared@group.calendar.google.com"}]
    )
    reader = emu.account(
        calendars=[
            {
                "summary": "Team",
                "id": "team0shared@group.calendar.google.com",
                "access_role": "reader",
            }
        ]
    )
    entry = (
        emu.service(reader)
        .calendarList()
        .get(calendarId="team0shared@group.calendar.google.com")
        .execute()
    )
    assert entry["accessRole"] == "reader"
    # The same calendar: the owner's event is visible to the reader.
    emu.service(owner).events().insert(
        calendarId="team0shared@group.calendar.google.com",
        body={
            "summary": "Planning",
            "start": {"date": "2025-03-03"},
            "end": {"date": "2025-03-04"},
        },
    ).execute()
    seen = (
        emu.service(reader)
        .events()
        .list(calendarId="team0shared@group.calendar.google.com")
        .execute()
    )
    assert [e["summary"] for e in seen["items"]] == ["Planning"]


def test_calendars_get_and_primary_alias(emu: Emu) -> None:
    account = emu.account()
    service = emu.service(account)
    calendar = service.calendars().get(calendarId="primary").execute()
    assert calendar["id"] == account.email
    assert calendar["kind"] == "calendar#calendar"


def test_unknown_or_foreign_calendar_is_404(emu: Emu) -> None:
    someone = emu.account()
    other = emu.account()
    service = emu.service(other)
    for calendar_id in ("nobody@example.com", someone.email):
        with pytest.raises(HttpError) as caught:
            service.calendars().get(calendarId=calendar_id).execute()
        assert caught.value.resp.status == 404
        assert caught.value.error_details[0]["reason"] == "notFound"


def test_admin_rejects_bad_account_bodies(emu: Emu) -> None:
    for body in ({}, {"email": "no-at-sign"}, {"email": "a@b.c", "calendars": [{"id": "x"}]}):
        answer = emu.admin.post("/emulator/accounts", json=body)
        assert answer.status_code == 400, body
        assert "error" in answer.json()
    emu.account(email="twice@example.com")
    assert (
        emu.admin.post("/emulator/accounts", json={"email": "twice@example.com"}).status_code == 409
    )
