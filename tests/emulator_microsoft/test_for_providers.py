"""What the Graph emulator gained for calsync's provider tests: faults that say their own
Retry-After, calendars made by the person or shared read-only, a login refused at once, and
series sent as their master rows in delta."""

from __future__ import annotations

import ssl

import httpx

from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from tests.emulator_microsoft.conftest import PREFER_UTC_IMMUTABLE, Graph, event, timed


def test_a_fault_says_its_own_retry_after(graph: Graph) -> None:
    client = graph.client(graph.account())
    graph.fault(method="calendars.list", status=429, times=1, retry_after=0)
    graph.fault(method="calendars.list", status=503, times=1, retry_after=7)
    graph.fault(method="calendars.list", status=429, times=1)
    assert client.get("/me/calendars").headers["retry-after"] == "0"
    assert client.get("/me/calendars").headers["retry-after"] == "7"
    assert client.get("/me/calendars").headers["retry-after"] == "1"  # Graph's usual


def test_the_person_makes_a_calendar_and_others_share_one_read_only(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    made = client.post("/me/calendars", json={"name": "Side project"})
    assert made.status_code == 201, made.text
    assert made.json()["canEdit"]
    assert not made.json()["isDefaultCalendar"]
    assert client.post("/me/calendars", json={}).status_code == 400
    shared = graph.admin.post(
        f"/emulator/accounts/{account.email}/calendars",
        json={"name": "Holidays", "can_edit": False},
    )
    assert shared.status_code == 201, shared.text
    listed = {c["name"]: c for c in client.get("/me/calendars").json()["value"]}
    assert listed["Side project"]["canEdit"]
    assert not listed["Holidays"]["canEdit"]
    refused = client.post(f"/me/calendars/{shared.json()['id']}/events", json=event())
    assert refused.status_code == 403
    assert client.post(f"/me/calendars/{made.json()['id']}/events", json=event()).is_success


def test_a_refused_login_refuses_every_token_at_once(graph: Graph) -> None:
    account = graph.account()
    client = graph.client(account)
    assert client.get("/me").status_code == 200
    answer = graph.admin.post(f"/emulator/accounts/{account.email}/refuse-login")
    assert answer.status_code == 200, answer.text
    assert client.get("/me").status_code == 401
    refused = httpx.post(
        f"{graph.tls_url}common/oauth2/v2.0/token",
        data={
            "client_id": "c",
            "grant_type": "refresh_token",
            "refresh_token": account.refresh_token,
        },
        verify=ssl.create_default_context(cafile=graph.ca_path),
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert graph.admin.post("/emulator/accounts/nobody@x.example/refuse-login").status_code == 404


def test_series_can_come_as_their_master_row_in_delta() -> None:
    config = GraphEmulatorConfig(delta_series_masters=True, delta_empty_first_page=False)
    with run_graph_emulator(config) as running:
        world = Graph(running.url, running.tls_url, str(running.ca_path))
        try:
            client = world.client(world.account(), prefer=PREFER_UTC_IMMUTABLE)
            master = client.post(
                "/me/events",
                json={
                    "subject": "Daily",
                    **timed("2026-03-02", "09:00", "09:15", "UTC"),
                    "recurrence": {
                        "pattern": {"type": "daily", "interval": 1},
                        "range": {
                            "type": "numbered",
                            "startDate": "2026-03-02",
                            "numberOfOccurrences": 3,
                        },
                    },
                },
            ).json()
            single = client.post("/me/events", json=event("One-off")).json()
            page = client.get(
                "/me/calendar/calendarView/delta",
                params={
                    "startDateTime": "2026-03-01T00:00:00Z",
                    "endDateTime": "2026-03-10T00:00:00Z",
                },
            ).json()
            rows = {(v["id"], v["type"]) for v in page["value"]}
            assert rows == {(master["id"], "seriesMaster"), (single["id"], "singleInstance")}
        finally:
            world.close()
