"""events.list through the real client: paging, windows, filters, sync tokens, 410."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from googleapiclient.errors import HttpError

from tests.emulator_google.conftest import Emu, timed


def _all_pages(events: Any, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every item of a list, following nextPageToken, and the raw pages."""
    pages = []
    token = None
    while True:
        page = events.list(**params, **({"pageToken": token} if token else {})).execute()
        pages.append(page)
        token = page.get("nextPageToken")
        if not token:
            return [i for p in pages for i in p["items"]], pages


def test_paging_ends_in_a_sync_token_on_the_last_page_only(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    for n in range(7):
        events.insert(
            calendarId="primary",
            body={"summary": f"e{n}", **timed("2025-03-03", f"1{n}:00", f"1{n}:30")},
        ).execute()
    items, pages = _all_pages(events, calendarId="primary", maxResults=3)
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    for page in pages[:-1]:
        assert "nextPageToken" in page
        assert "nextSyncToken" not in page
    assert "nextSyncToken" in pages[-1]
    assert "nextPageToken" not in pages[-1]
    assert sorted(i["summary"] for i in items) == [f"e{n}" for n in range(7)]
    default = events.list(calendarId="primary").execute()
    assert len(default["items"]) == 7
    assert "nextSyncToken" in default


def test_time_window_is_exclusive_on_both_ends(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    for name, start, end in (
        ("before", "08:00", "09:00"),
        ("inside", "09:30", "10:00"),
        ("after", "10:00", "11:00"),
        ("across", "08:30", "09:30"),
    ):
        events.insert(
            calendarId="primary",
            body={"summary": name, **timed("2025-03-03", start, end, tz="UTC")},
        ).execute()
    found = events.list(
        calendarId="primary",
        timeMin="2025-03-03T09:00:00Z",
        timeMax="2025-03-03T10:00:00+00:00",
    ).execute()["items"]
    assert sorted(e["summary"] for e in found) == ["across", "inside"]
    with pytest.raises(HttpError) as error:
        events.list(
            calendarId="primary", timeMin="2025-03-03T10:00:00Z", timeMax="2025-03-03T09:00:00Z"
        ).execute()
    assert error.value.resp.status == 400


def test_show_deleted_private_properties_and_event_types(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    day = timed("2025-03-03", "10:00", "11:00")
    block = events.insert(
        calendarId="primary",
        body={
            "summary": "block",
            "extendedProperties": {"private": {"calsync": "1", "src": "a"}},
            **day,
        },
    ).execute()
    events.insert(
        calendarId="primary",
        body={
            "summary": "other",
            "extendedProperties": {"private": {"calsync": "1", "src": "b"}},
            **day,
        },
    ).execute()
    focus = events.insert(
        calendarId="primary", body={"summary": "focus", "eventType": "focusTime", **day}
    ).execute()
    gone = events.insert(calendarId="primary", body={"summary": "gone", **day}).execute()
    events.delete(calendarId="primary", eventId=gone["id"]).execute()

    def ids(**params: Any) -> set[str]:
        return {e["id"] for e in events.list(calendarId="primary", **params).execute()["items"]}

    assert gone["id"] not in ids()
    assert gone["id"] in ids(showDeleted=True)
    assert ids(privateExtendedProperty=["calsync=1", "src=a"]) == {block["id"]}
    assert len(ids(privateExtendedProperty="calsync=1")) == 2
    assert ids(eventTypes="focusTime") == {focus["id"]}
    assert focus["id"] not in ids(eventTypes=["default", "outOfOffice"])


def test_incremental_sync_returns_changes_and_deletions(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    kept = events.insert(
        calendarId="primary", body={"summary": "kept", **timed("2025-03-03", "10:00", "11:00")}
    ).execute()
    doomed = events.insert(
        calendarId="primary", body={"summary": "doomed", **timed("2025-03-03", "12:00", "13:00")}
    ).execute()
    token = events.list(calendarId="primary").execute()["nextSyncToken"]
    assert events.list(calendarId="primary", syncToken=token).execute()["items"] == []
    events.patch(calendarId="primary", eventId=kept["id"], body={"summary": "changed"}).execute()
    events.delete(calendarId="primary", eventId=doomed["id"]).execute()
    new = events.insert(
        calendarId="primary", body={"summary": "new", **timed("2025-03-04", "10:00", "11:00")}
    ).execute()
    items, pages = _all_pages(events, calendarId="primary", syncToken=token, maxResults=2)
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {kept["id"], doomed["id"], new["id"]}
    assert by_id[kept["id"]]["summary"] == "changed"
    assert by_id[doomed["id"]]["status"] == "cancelled"
    next_token = pages[-1]["nextSyncToken"]
    assert events.list(calendarId="primary", syncToken=next_token).execute()["items"] == []


def test_sync_token_remembers_the_window_but_always_returns_deletions(emu: Emu) -> None:
    events = emu.service(emu.account()).events()
    outside = events.insert(
        calendarId="primary", body={"summary": "far", **timed("2025-06-01", "10:00", "11:00")}
    ).execute()
    token = events.list(
        calendarId="primary", timeMin="2025-03-01T00:00:00Z", timeMax="2025-04-01T00:00:00Z"
    ).execute()["nextSyncToken"]
    inside = events.insert(
        calendarId="primary", body={"summary": "near", **timed("2025-03-10", "10:00", "11:00")}
    ).execute()
    events.insert(
        calendarId="primary", body={"summary": "far too", **timed("2025-07-01", "10:00", "11:00")}
    ).execute()
    events.delete(calendarId="primary", eventId=outside["id"]).execute()
    items = events.list(calendarId="primary", syncToken=token).execute()["items"]
    assert {(i["id"], i["status"]) for i in items} == {
        (inside["id"], "confirmed"),
        (outside["id"], "cancelled"),
    }


@pytest.mark.parametrize(
    "param",
    [
        {"timeMin": "2025-01-01T00:00:00Z"},
        {"timeMax": "2025-01-01T00:00:00Z"},
        {"privateExtendedProperty": "a=b"},
        {"q": "x"},
        {"iCalUID": "x@google.com"},
        {"updatedMin": "2025-01-01T00:00:00Z"},
        {"orderBy": "updated"},
        {"sharedExtendedProperty": "a=b"},
    ],
)
def test_forbidden_parameters_with_a_sync_token_are_400(emu: Emu, param: dict[str, str]) -> None:
    events = emu.service(emu.account()).events()
    token = events.list(calendarId="primary").execute()["nextSyncToken"]
    with pytest.raises(HttpError) as caught:
        events.list(calendarId="primary", syncToken=token, **param).execute()
    assert caught.value.resp.status == 400
    assert caught.value.error_details[0]["location"] == next(iter(param))


def test_expired_sync_token_is_410_with_googles_exact_body(emu: Emu) -> None:
    account = emu.account()
    events = emu.service(account).events()
    token = events.list(calendarId="primary").execute()["nextSyncToken"]
    answer = emu.admin.post(f"/emulator/calendars/{account.email}/expire-sync-tokens")
    assert answer.status_code == 200
    raw = httpx.get(
        f"{emu.url}calendar/v3/calendars/primary/events",
        params={"syncToken": token},
        headers={"authorization": f"Bearer {account.access_token}"},
    )
    assert raw.status_code == 410
    assert raw.json() == {
        "error": {
            "errors": [
                {
                    "domain": "calendar",
                    "reason": "fullSyncRequired",
                    "message": "Sync token is no longer valid, a full sync is required.",
                    "locationType": "parameter",
                    "location": "syncToken",
                }
            ],
            "code": 410,
            "message": "Sync token is no longer valid, a full sync is required.",
        }
    }
    # A full sync gives a token that works again.
    fresh = events.list(calendarId="primary").execute()["nextSyncToken"]
    assert events.list(calendarId="primary", syncToken=fresh).execute()["items"] == []
    assert emu.admin.post("/emulator/calendars/nobody@x.y/expire-sync-tokens").status_code == 404


def test_list_paging_is_not_quadratic(emu: Emu) -> None:
    """A thousand events inserted in batches of 50 and listed 100 at a time arrive once each."""
    account = emu.account()
    service = emu.service(account)
    batch = None
    for n in range(1000):
        if n % 50 == 0:
            if batch is not None:
                batch.execute()
            batch = service.new_batch_http_request()
        assert batch is not None
        batch.add(
            service.events().insert(
                calendarId="primary",
                body={"summary": f"e{n}", **timed("2025-03-03", "10:00", "11:00")},
            )
        )
    assert batch is not None
    batch.execute()
    items, pages = _all_pages(service.events(), calendarId="primary", maxResults=100)
    assert len(items) == 1000
    assert len({i["id"] for i in items}) == 1000
    assert len(pages) == 10
