"""Outlook's per-mailbox limits (switchable) and injected faults, through the admin API."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from calsync_server.emulators.microsoft.runner import run_graph_emulator
from tests.emulator_microsoft.conftest import FAST, Graph
from tests.support.held import HeldAnswers
from tests.support.waiting import wait_until


def test_defaults_are_outlooks(graph: Graph) -> None:
    settings = graph.admin.get("/emulator/throttling").json()
    assert settings == {
        "enabled": True,
        "requests_per_window": 10_000,
        "window_s": 600.0,
        "concurrent_requests": 4,
        "rejected": 0,
    }


def test_a_fifth_concurrent_request_is_throttled() -> None:
    # Slow calls hold their slot: four are held in the emulator until the fifth has been
    # answered (no clock decides which overlap).
    held = HeldAnswers()
    with run_graph_emulator(dataclasses.replace(FAST, sleep=held.wait)) as running:
        graph = Graph(running.url, running.tls_url, str(running.ca_path))
        try:
            account = graph.account()
            graph.fault(method="me.get", status=200, times=4, delay_ms=1)
            clients = [graph.client(account) for _ in range(5)]
            with ThreadPoolExecutor(4) as pool:
                slow = [pool.submit(client.get, "/me") for client in clients[:4]]
                wait_until(lambda: held.holding == 4, what="four calls held in the emulator")
                throttled = clients[4].get("/me")
                held.release()
                answers = [call.result() for call in slow]
            # Answered, the four gave their slots back.
            again = clients[4].get("/me")
        finally:
            held.release()
            graph.close()
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "ApplicationThrottled"
    assert "retry-after" in throttled.headers
    assert again.status_code == 200, again.text


def test_faults_answer_graph_errors_and_drop_connections(graph: Graph) -> None:
    client = graph.client(graph.account())
    graph.fault(method="calendars.list", status=503, times=1)
    failed = client.get("/me/calendars")
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "ServiceUnavailable"
    assert "retry-after" in failed.headers
    assert client.get("/me/calendars").status_code == 200
    graph.fault(method="calendars.list", status=500, reason="ErrorMailboxStoreUnavailable", times=1)
    assert client.get("/me/calendars").json()["error"]["code"] == "ErrorMailboxStoreUnavailable"
    graph.fault(method="calendars.list", status=0, times=1, drop_connection=True)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/me/calendars")
    stats = graph.admin.get("/emulator/stats").json()
    assert stats["calls"]["calendars.list"] >= 4


def test_the_request_budget_refills_after_the_window(graph: Graph) -> None:
    """Last in this module: it changes the limits and moves the clock."""
    client = graph.client(graph.account())
    graph.admin.put("/emulator/throttling", json={"requests_per_window": 3})
    try:
        assert [client.get("/me").status_code for _ in range(4)] == [200, 200, 200, 429]
        throttled = client.get("/me")
        assert 1 <= int(throttled.headers["retry-after"]) <= 600
        graph.advance(601)
        assert client.get("/me").status_code == 200
        graph.admin.put("/emulator/throttling", json={"enabled": False})
        assert {client.get("/me").status_code for _ in range(5)} == {200}
    finally:
        graph.admin.put(
            "/emulator/throttling", json={"enabled": True, "requests_per_window": 10_000}
        )
