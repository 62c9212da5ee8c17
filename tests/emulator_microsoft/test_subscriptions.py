"""Subscriptions against a real HTTP receiver: validation of both URLs, lifetime, renew,
delete, reauthorize, notifications (batched, retried) and lifecycle notices."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.emulator_microsoft.conftest import Account, Graph, event
from tests.support.push_receiver import PushReceiver, push_receiver
from tests.support.waiting import wait_until


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    with push_receiver() as running:
        yield running


@pytest.fixture
def lifecycle() -> Iterator[PushReceiver]:
    with push_receiver() as running:
        yield running


def _expiry(graph: Graph, minutes: float) -> str:
    now = datetime.fromisoformat(graph.admin.get("/emulator/clock").json()["now"])
    return (now + timedelta(minutes=minutes)).astimezone(UTC).isoformat()


def _subscribe(
    graph: Graph,
    client: httpx.Client,
    account: Account,
    receiver: PushReceiver,
    lifecycle: PushReceiver | None = None,
    minutes: float = 60,
) -> httpx.Response:
    body: dict[str, Any] = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url,
        "resource": f"me/calendars/{account.default_calendar}/events",
        "expirationDateTime": _expiry(graph, minutes),
        "clientState": "secret-state",
    }
    if lifecycle is not None:
        body["lifecycleNotificationUrl"] = lifecycle.url
    return client.post("/subscriptions", json=body)


def test_both_urls_are_validated(
    graph: Graph, receiver: PushReceiver, lifecycle: PushReceiver
) -> None:
    account = graph.account()
    client = graph.client(account)
    created = _subscribe(graph, client, account, receiver, lifecycle)
    assert created.status_code == 201, created.text
    assert len(receiver.validations) == len(lifecycle.validations) == 1
    assert receiver.validations[0].startswith("Validation: ")
    assert created.json()["clientState"] == "secret-state"
    lifecycle.validation = "wrong"
    refused = _subscribe(graph, client, account, receiver, lifecycle)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "ValidationError"
    receiver.validation = "refuse"
    assert _subscribe(graph, client, account, receiver).status_code == 400


def test_maximum_lifetime_is_enforced(graph: Graph, receiver: PushReceiver) -> None:
    account = graph.account()
    client = graph.client(account)
    too_long = _subscribe(graph, client, account, receiver, minutes=4231)
    assert too_long.status_code == 400
    assert "4230" in too_long.json()["error"]["message"]
    assert _subscribe(graph, client, account, receiver, minutes=4229).status_code == 201


def test_renew_get_reauthorize_delete(graph: Graph, receiver: PushReceiver) -> None:
    account = graph.account()
    client = graph.client(account)
    created = _subscribe(graph, client, account, receiver).json()
    url = f"/subscriptions/{created['id']}"
    renewed = client.patch(url, json={"expirationDateTime": _expiry(graph, 3000)})
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] > created["expirationDateTime"]
    assert client.get(url).json()["expirationDateTime"] == renewed.json()["expirationDateTime"]
    assert client.patch(url, json={"expirationDateTime": _expiry(graph, 5000)}).status_code == 400
    assert client.post(f"{url}/reauthorize").status_code == 200
    assert [s["id"] for s in client.get("/subscriptions").json()["value"]] == [created["id"]]
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.patch(url, json={"expirationDateTime": _expiry(graph, 60)}).status_code == 404


def test_notifications_arrive_batched_with_client_state(
    graph: Graph, receiver: PushReceiver
) -> None:
    account = graph.account()
    client = graph.client(account)
    subscription = _subscribe(graph, client, account, receiver).json()
    created = client.post("/me/events", json=event()).json()
    values = wait_until(
        lambda: [v for v in receiver.graph_values() if v["changeType"] == "updated"],
        what="the created and updated notifications",
    )
    kinds = [v["changeType"] for v in receiver.graph_values()]
    assert kinds[:2] == ["created", "updated"]  # several notifications for one change
    first = values[0]
    assert first["subscriptionId"] == subscription["id"]
    assert first["clientState"] == "secret-state"
    assert first["tenantId"] == account.tenant_id
    assert first["resourceData"]["id"] == created["id"]  # ImmutableId asked at creation
    assert first["resource"] == f"Users/{account.oid}/Events/{created['id']}"
    client.delete(f"/me/events/{created['id']}")
    wait_until(
        lambda: [v for v in receiver.graph_values() if v["changeType"] == "deleted"],
        what="the deleted notification",
    )


def test_failed_and_slow_answers_are_retried(graph: Graph, receiver: PushReceiver) -> None:
    account = graph.account()
    client = graph.client(account)
    _subscribe(graph, client, account, receiver)
    receiver.script = [500]
    receiver.delays = [0.0, 0.8]  # the second answer comes later than the 0.5 s allowed
    client.post("/me/events", json=event())
    wait_until(lambda: len(receiver.received) >= 3, what="two retries")
    bodies = [n.body for n in receiver.received]
    assert bodies[0] == bodies[1] == bodies[2]  # the same batch, again
    assert [n.answered for n in receiver.received[:3]] == [500, 200, 200]


def test_lifecycle_notices_on_demand(
    graph: Graph, receiver: PushReceiver, lifecycle: PushReceiver
) -> None:
    account = graph.account()
    client = graph.client(account)
    subscription = _subscribe(graph, client, account, receiver, lifecycle).json()
    for notice in ("missed", "reauthorizationRequired", "subscriptionRemoved"):
        answer = graph.admin.post(
            f"/emulator/subscriptions/{subscription['id']}/lifecycle", json={"event": notice}
        )
        assert answer.status_code == 200, answer.text
    got = wait_until(lambda: len(lifecycle.graph_values()) >= 3 and lifecycle.graph_values())
    assert sorted(v["lifecycleEvent"] for v in got) == [
        "missed",
        "reauthorizationRequired",
        "subscriptionRemoved",
    ]
    assert {v["subscriptionId"] for v in got} == {subscription["id"]}
    assert {v["clientState"] for v in got} == {"secret-state"}
    assert client.get(f"/subscriptions/{subscription['id']}").status_code == 404


def test_nearing_expiry_asks_for_reauthorization_then_removes(
    graph: Graph, receiver: PushReceiver, lifecycle: PushReceiver
) -> None:
    """Last in this module: it moves the clock on."""
    account = graph.account()
    client = graph.client(account)
    subscription = _subscribe(graph, client, account, receiver, lifecycle, minutes=30).json()
    graph.advance(25 * 60)
    wait_until(
        lambda: [
            v for v in lifecycle.graph_values() if v["lifecycleEvent"] == "reauthorizationRequired"
        ],
        what="reauthorizationRequired",
    )
    graph.advance(6 * 60)
    wait_until(
        lambda: [
            v for v in lifecycle.graph_values() if v["lifecycleEvent"] == "subscriptionRemoved"
        ],
        what="subscriptionRemoved",
    )
    assert client.get(f"/subscriptions/{subscription['id']}").status_code == 404
