"""JSON `$batch`: at most 20 requests, unique ids, answers matched by id in any order, each with
its own status (429 with Retry-After included)."""

from __future__ import annotations

from typing import Any

from tests.emulator_microsoft.conftest import Graph, event


def _create(index: int) -> dict[str, Any]:
    return {
        "id": str(index),
        "method": "POST",
        "url": "/me/events",
        "headers": {"content-type": "application/json"},
        "body": event(f"batched {index}"),
    }


def test_more_than_20_or_repeated_ids_are_refused(graph: Graph) -> None:
    client = graph.client(graph.account())
    too_many = client.post("/$batch", json={"requests": [_create(i) for i in range(21)]})
    assert too_many.status_code == 400
    repeated = client.post("/$batch", json={"requests": [_create(1), _create(1)]})
    assert repeated.status_code == 400
    assert client.get("/me/events").json()["value"] == []


def test_answers_each_request_by_id_in_any_order(graph: Graph) -> None:
    client = graph.client(graph.account())
    created = client.post("/me/events", json=event("existing")).json()
    requests = [_create(i) for i in range(3)]
    requests.append({"id": "get", "method": "GET", "url": f"/me/events/{created['id']}"})
    requests.append({"id": "missing", "method": "DELETE", "url": "/me/events/AAMkAGnope"})
    answer = client.post("/$batch", json={"requests": requests})
    assert answer.status_code == 200
    responses = answer.json()["responses"]
    assert [r["id"] for r in responses] != [r["id"] for r in requests]
    by_id = {r["id"]: r for r in responses}
    assert {by_id[str(i)]["status"] for i in range(3)} == {201}
    assert by_id["get"]["body"]["subject"] == "existing"
    assert by_id["missing"]["status"] == 404
    assert by_id["missing"]["body"]["error"]["code"] == "ErrorItemNotFound"


def test_an_item_can_be_throttled_on_its_own(graph: Graph) -> None:
    client = graph.client(graph.account())
    graph.fault(method="events.create", status=429, times=1)
    answer = client.post("/$batch", json={"requests": [_create(i) for i in range(4)]})
    statuses = sorted(r["status"] for r in answer.json()["responses"])
    assert statuses == [201, 201, 201, 429]
    throttled = next(r for r in answer.json()["responses"] if r["status"] == 429)
    assert int(throttled["headers"]["retry-after"]) >= 1
    assert len(client.get("/me/events").json()["value"]) == 3
