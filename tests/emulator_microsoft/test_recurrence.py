"""Recurring series: occurrences, exceptions (moved), deleted occurrences, the instances
endpoint and calendarView."""

from __future__ import annotations

from typing import Any

from tests.emulator_microsoft.conftest import Graph, timed

WINDOW = {"startDateTime": "2026-03-02T00:00:00Z", "endDateTime": "2026-03-16T00:00:00Z"}


def _series(client: Any) -> dict[str, Any]:
    answer = client.post(
        "/me/events",
        json={
            "subject": "Stand-up",
            **timed("2026-03-02", "09:30", "09:45", "GMT Standard Time"),
            "recurrence": {
                "pattern": {
                    "type": "weekly",
                    "interval": 1,
                    "daysOfWeek": ["monday", "wednesday", "friday"],
                },
                "range": {"type": "endDate", "startDate": "2026-03-02", "endDate": "2026-03-13"},
            },
        },
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_instances_need_a_window_and_list_occurrences(graph: Graph) -> None:
    client = graph.client(graph.account())
    master = _series(client)
    assert master["type"] == "seriesMaster"
    assert master["recurrence"]["pattern"]["daysOfWeek"] == ["monday", "wednesday", "friday"]
    assert client.get(f"/me/events/{master['id']}/instances").status_code == 400
    instances = client.get(
        f"/me/events/{master['id']}/instances", params={**WINDOW, "$top": 50}
    ).json()["value"]
    assert len(instances) == 6
    assert {i["type"] for i in instances} == {"occurrence"}
    assert {i["seriesMasterId"] for i in instances} == {master["id"]}
    assert instances[0]["start"]["dateTime"] == "2026-03-02T09:30:00.0000000"  # GMT = UTC


def test_moved_and_deleted_occurrences(graph: Graph) -> None:
    client = graph.client(graph.account())
    master = _series(client)
    url = f"/me/events/{master['id']}/instances"
    instances = client.get(url, params={**WINDOW, "$top": 50}).json()["value"]
    moved = client.patch(
        f"/me/events/{instances[1]['id']}",
        json=timed("2026-03-04", "11:00", "11:15", "GMT Standard Time"),
    ).json()
    assert moved["type"] == "exception"
    assert moved["originalStart"].startswith("2026-03-04T09:30:00")
    assert client.delete(f"/me/events/{instances[2]['id']}").status_code == 204
    after = client.get(url, params={**WINDOW, "$top": 50}).json()["value"]
    assert len(after) == 5
    assert [i["type"] for i in after].count("exception") == 1
    assert instances[2]["id"] not in {i["id"] for i in after}
    view = client.get("/me/calendarView", params={**WINDOW, "$top": 50}).json()["value"]
    assert sorted(v["start"]["dateTime"][:16] for v in view) == sorted(
        i["start"]["dateTime"][:16] for i in after
    )
    assert client.get(f"/me/events/{instances[2]['id']}").status_code == 404
    # /events lists the master only, not its occurrences.
    assert [e["id"] for e in client.get("/me/events").json()["value"]] == [master["id"]]
