"""Graph v1.0 calendars and events over plain httpx: ids, etags, If-Match, transactionId,
extended properties, zones and preferences, the fields calsync reads, and error bodies."""

from __future__ import annotations

import uuid

from tests.emulator_microsoft.conftest import Graph, event, timed

MARK = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calsync_source"
ONE_SOURCE = f"ep/id eq '{MARK}' and ep/value eq 'source-b'"


def test_me_and_calendars(graph: Graph) -> None:
    account = graph.account(
        name="Alex Morgan",
        calendars=[
            {"name": "Projects", "color": "lightGreen"},
            {"name": "Holidays", "can_edit": False},
        ],
    )
    client = graph.client(account)
    me = client.get("/me").json()
    assert me["id"] == account.oid
    assert me["displayName"] == "Alex Morgan"
    calendars = client.get("/me/calendars").json()["value"]
    assert [c["name"] for c in calendars] == ["Calendar", "Projects", "Holidays"]
    assert [c["isDefaultCalendar"] for c in calendars] == [True, False, False]
    assert [c["canEdit"] for c in calendars] == [True, True, False]
    assert calendars[1]["color"] == "lightGreen"
    assert calendars[1]["hexColor"].startswith("#")
    assert client.get("/me/calendar").json()["id"] == calendars[0]["id"]
    refused = client.post(f"/me/calendars/{calendars[2]['id']}/events", json=event())
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ErrorAccessDenied"


def test_create_get_patch_delete_with_changing_etags(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    created = client.post(
        f"/me/calendars/{account.default_calendar}/events",
        json=event("Plan", id="my-own-id", showAs="tentative"),
    )
    assert created.status_code == 201
    body = created.json()
    assert body["id"] != "my-own-id"  # ids are the server's
    assert body["showAs"] == "tentative"
    assert body["type"] == "singleInstance"
    assert body["responseStatus"]["response"] == "organizer"
    assert body["@odata.etag"] == f'W/"{body["changeKey"]}"'
    got = client.get(f"/me/events/{body['id']}").json()
    assert got["subject"] == "Plan"
    patched = client.patch(f"/me/events/{body['id']}", json={"subject": "Plan B"}).json()
    assert patched["subject"] == "Plan B"
    assert patched["changeKey"] != body["changeKey"]
    stale = client.patch(
        f"/me/events/{body['id']}", json={"subject": "C"}, headers={"if-match": body["@odata.etag"]}
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "ErrorIrresolvableConflict"
    fresh = client.patch(
        f"/me/events/{body['id']}",
        json={"subject": "C"},
        headers={"if-match": patched["@odata.etag"]},
    )
    assert fresh.status_code == 200
    assert client.delete(f"/me/events/{body['id']}").status_code == 204
    gone = client.delete(f"/me/events/{body['id']}")
    assert gone.status_code == 404
    error = gone.json()["error"]
    assert error["code"] == "ErrorItemNotFound"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


def test_transaction_id_dedupes_creates(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    transaction = str(uuid.uuid4())
    first = client.post("/me/events", json=event(transactionId=transaction))
    again = client.post("/me/events", json=event(transactionId=transaction))
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = client.post("/me/events", json=event(transactionId=str(uuid.uuid4())))
    assert other.json()["id"] != first.json()["id"]
    assert len(client.get("/me/events").json()["value"]) == 2


def test_unknown_properties_and_values_are_refused(graph: Graph) -> None:
    client = graph.client(graph.account())
    unknown = client.post("/me/events", json=event(colour="red"))
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "RequestBodyRead"
    bad_show_as = client.post("/me/events", json=event(showAs="away"))
    assert bad_show_as.status_code == 400


def test_extended_properties_are_stored_filtered_and_expanded(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    calendar = account.default_calendar
    for key in ("source-a", "source-b"):
        answer = client.post(
            f"/me/calendars/{calendar}/events",
            json=event(key, singleValueExtendedProperties=[{"id": MARK, "value": key}]),
        )
        assert answer.status_code == 201
        assert "singleValueExtendedProperties" not in answer.json()
    client.post(f"/me/calendars/{calendar}/events", json=event("not ours"))
    one = client.get(
        f"/me/calendars/{calendar}/events",
        params={
            "$filter": "singleValueExtendedProperties/Any(ep: "
            f"ep/id eq '{MARK}' and ep/value eq 'source-b')"
        },
    ).json()["value"]
    assert [e["subject"] for e in one] == ["source-b"]
    marked = client.get(
        f"/me/calendars/{calendar}/events",
        params={
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{MARK}')",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{MARK}')",
        },
    ).json()["value"]
    assert sorted(e["singleValueExtendedProperties"][0]["value"] for e in marked) == [
        "source-a",
        "source-b",
    ]
    bad = client.post(
        "/me/events", json=event(singleValueExtendedProperties=[{"id": "nonsense", "value": "x"}])
    )
    assert bad.status_code == 400


def test_all_day_must_be_midnight_to_midnight_in_one_zone(graph: Graph) -> None:
    client = graph.client(graph.account())
    wrong = client.post(
        "/me/events",
        json={"subject": "Off", "isAllDay": True, **timed("2026-03-03", "09:00", "17:00")},
    )
    assert wrong.status_code == 400
    assert "midnight" in wrong.json()["error"]["message"]
    right = client.post(
        "/me/events",
        json={
            "subject": "Off",
            "isAllDay": True,
            "start": {"dateTime": "2026-03-03T00:00:00", "timeZone": "GMT Standard Time"},
            "end": {"dateTime": "2026-03-04T00:00:00", "timeZone": "GMT Standard Time"},
        },
    )
    assert right.status_code == 201
    # All-day events read midnight to midnight in whatever zone is asked for.
    assert right.json()["start"] == {"dateTime": "2026-03-03T00:00:00.0000000", "timeZone": "UTC"}


def test_windows_and_iana_zones_and_outlook_timezone_preference(graph: Graph) -> None:
    account = graph.account()
    utc = graph.client(account)
    windows = utc.post(
        "/me/events", json=event(**timed("2026-07-01", "09:00", "10:00", "Pacific Standard Time"))
    ).json()
    iana = utc.post(
        "/me/events", json=event(**timed("2026-07-01", "09:00", "10:00", "America/Los_Angeles"))
    ).json()
    assert (
        windows["start"]
        == iana["start"]
        == {
            "dateTime": "2026-07-01T16:00:00.0000000",
            "timeZone": "UTC",
        }
    )
    assert windows["originalStartTimeZone"] == "Pacific Standard Time"
    unknown = utc.post(
        "/me/events", json=event(**timed("2026-07-01", "09:00", "10:00", "Mars/Olympus"))
    )
    assert unknown.status_code == 400
    london = graph.client(account, prefer='outlook.timezone="GMT Standard Time"')
    answer = london.get(f"/me/events/{windows['id']}")
    assert answer.json()["start"] == {
        "dateTime": "2026-07-01T17:00:00.0000000",
        "timeZone": "GMT Standard Time",
    }
    assert 'outlook.timezone="GMT Standard Time"' in answer.headers["preference-applied"]


def test_immutable_and_rest_ids_name_the_same_event(graph: Graph) -> None:
    account = graph.account()
    immutable = graph.client(account)
    rest = graph.client(account, prefer=None)
    created = immutable.post("/me/events", json=event()).json()
    by_rest = rest.get(f"/me/events/{created['id']}").json()
    assert by_rest["id"] != created["id"]
    assert by_rest["changeKey"] == created["changeKey"]
    assert immutable.get(f"/me/events/{by_rest['id']}").json()["id"] == created["id"]


def test_invitations_responses_attendees_and_cancelled_meetings(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    organizer = {"emailAddress": {"name": "Jordan Lee", "address": "jordan@contoso.example"}}
    invite = graph.admin.post(
        f"/emulator/accounts/{account.email}/events",
        json=event(
            "Review",
            organizer=organizer,
            isOrganizer=False,
            responseStatus={"response": "notResponded"},
            attendees=[{"type": "required", **organizer}],
        ),
    ).json()
    cancelled = graph.admin.post(
        f"/emulator/accounts/{account.email}/events",
        json=event("Called off", organizer=organizer, isOrganizer=False, isCancelled=True),
    ).json()
    got = client.get(f"/me/events/{invite['id']}").json()
    assert got["responseStatus"]["response"] == "notResponded"
    assert got["attendees"][0]["emailAddress"]["address"] == "jordan@contoso.example"
    assert got["attendees"][0]["status"]["response"] == "none"
    assert client.post(f"/me/events/{invite['id']}/decline", json={}).status_code == 202
    assert (
        client.get(f"/me/events/{invite['id']}").json()["responseStatus"]["response"] == "declined"
    )
    assert client.get(f"/me/events/{cancelled['id']}").json()["isCancelled"] is True
    # isCancelled is the organizer's to set: a client's value is ignored.
    mine = client.post("/me/events", json=event(isCancelled=True)).json()
    assert mine["isCancelled"] is False
    assert client.post(f"/me/events/{mine['id']}/accept", json={}).status_code == 400
