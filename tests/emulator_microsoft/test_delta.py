"""calendarView delta per calendar: window, opaque tokens, page size, empty pages, repeats,
`@removed`, and expired cursors."""

from __future__ import annotations

from typing import Any

import httpx

from tests.emulator_microsoft.conftest import Account, Graph, event, timed

WINDOW = {"startDateTime": "2026-03-01T00:00:00Z", "endDateTime": "2026-04-01T00:00:00Z"}


def _delta_url(account: Account) -> str:
    return f"/me/calendars/{account.default_calendar}/calendarView/delta"


def _round(
    client: httpx.Client, first: str, params: dict[str, Any] | None = None, size: int = 2
) -> tuple[list[list[dict[str, Any]]], str]:
    """Follow nextLinks to the deltaLink: the pages seen and the deltaLink."""
    pages: list[list[dict[str, Any]]] = []
    url: str = first
    headers = {"prefer": f'outlook.timezone="UTC", IdType="ImmutableId", odata.maxpagesize={size}'}
    answer = client.get(url, params=params, headers=headers)
    while True:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body["value"])
        if "@odata.deltaLink" in body:
            return pages, body["@odata.deltaLink"]
        answer = client.get(body["@odata.nextLink"], headers=headers)


def test_a_window_is_required(graph: Graph) -> None:
    account = graph.account()
    answer = graph.client(account).get(_delta_url(account))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ErrorInvalidParameter"


def test_first_round_pages_with_empty_pages_and_repeats(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    ids = [
        client.post(
            "/me/events", json=event(f"e{n}", **timed(f"2026-03-{n + 2:02d}", "10:00", "11:00"))
        ).json()["id"]
        for n in range(5)
    ]
    client.post("/me/events", json=event("outside", **timed("2026-06-01", "10:00", "11:00")))
    first = client.get(
        _delta_url(account), params=WINDOW, headers={"prefer": "odata.maxpagesize=2"}
    )
    assert first.headers["preference-applied"] == "odata.maxpagesize=2"
    assert first.json()["value"] == []  # an empty page, with a nextLink: keep following
    next_link = first.json()["@odata.nextLink"]
    assert "$skiptoken=" in next_link
    assert "startDateTime" not in next_link
    pages, delta_link = _round(client, _delta_url(account), WINDOW)
    assert "$deltatoken=" in delta_link
    assert pages[0] == []
    assert all(len(p) <= 3 for p in pages)
    seen = [item["id"] for page in pages for item in page]
    assert sorted(set(seen)) == sorted(ids)  # the event outside the window is not there
    assert len(seen) > len(set(seen))  # an item repeated within the round
    # Delta items carry no extended properties.
    assert all("singleValueExtendedProperties" not in i for p in pages for i in p)


def test_changes_removals_and_changes_outside_the_window(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    kept = client.post(
        "/me/events", json=event("kept", **timed("2026-03-05", "10:00", "11:00"))
    ).json()
    changed = client.post(
        "/me/events", json=event("changed", **timed("2026-03-06", "10:00", "11:00"))
    ).json()
    deleted = client.post(
        "/me/events", json=event("deleted", **timed("2026-03-07", "10:00", "11:00"))
    ).json()
    moved = client.post(
        "/me/events", json=event("moved", **timed("2026-03-08", "10:00", "11:00"))
    ).json()
    _, delta_link = _round(client, _delta_url(account), WINDOW, size=10)
    client.patch(f"/me/events/{changed['id']}", json={"subject": "changed again"})
    client.delete(f"/me/events/{deleted['id']}")
    client.patch(f"/me/events/{moved['id']}", json=timed("2026-05-08", "10:00", "11:00"))
    outside = client.post(
        "/me/events", json=event("outside", **timed("2026-06-01", "10:00", "11:00"))
    ).json()
    pages, _ = _round(client, delta_link, size=10)
    items = {i["id"]: i for page in pages for i in page}
    assert kept["id"] not in items
    assert items[changed["id"]]["subject"] == "changed again"
    assert items[deleted["id"]]["@removed"] == {"reason": "deleted"}
    assert "type" not in items[deleted["id"]]
    assert items[moved["id"]]["@removed"] == {"reason": "deleted"}
    assert items[moved["id"]]["type"] == "singleInstance"
    assert items[outside["id"]]["@removed"] == {"reason": "deleted"}


def test_occurrences_come_expanded(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    client.post(
        "/me/events",
        json=event(
            "daily",
            **timed("2026-03-02", "08:00", "08:30"),
            recurrence={
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3},
            },
        ),
    )
    pages, _ = _round(client, _delta_url(account), WINDOW, size=10)
    items = [i for p in pages for i in p]
    assert [i["type"] for i in items] == ["occurrence"] * 3
    assert len({i["seriesMasterId"] for i in items}) == 1


def test_expired_cursors_answer_410(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    client.post("/me/events", json=event(**timed("2026-03-05", "10:00", "11:00")))
    _, delta_link = _round(client, _delta_url(account), WINDOW)
    answer = graph.admin.post(
        f"/emulator/calendars/{account.default_calendar}/expire-cursors", json={}
    )
    assert answer.status_code == 200
    gone = client.get(delta_link)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "syncStateNotFound"
    _, delta_link = _round(client, _delta_url(account), WINDOW)
    graph.admin.post(
        f"/emulator/calendars/{account.default_calendar}/expire-cursors", json={"status": 400}
    )
    invalid = client.get(delta_link)
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "syncStateNotFound"


def test_cursors_expire_with_time(graph: Graph) -> None:
    """Last in this module: it moves the emulator's clock eight days on."""
    account = graph.account()
    client = graph.client(account)
    _, delta_link = _round(client, _delta_url(account), WINDOW)
    assert client.get(delta_link).status_code == 200
    graph.advance(8 * 86400)
    # The access token is long expired by now; a refresh grant gives a new one.
    tokens = graph.admin.post(
        "/common/oauth2/v2.0/token",
        data={"grant_type": "refresh_token", "refresh_token": account.refresh_token},
    ).json()
    account.access_token = tokens["access_token"]
    expired = graph.client(account).get(delta_link)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "syncStateNotFound"
