"""Fault injection per method and the per-user quota, as clients see them."""

from __future__ import annotations

from collections.abc import Iterator

import httplib2
import httpx
import pytest
from googleapiclient.errors import HttpError

from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import run_emulator
from tests.emulator_google.conftest import Emu
from tests.support.google_service import calendar_service
from tests.support.waiting import wait_until


def test_fault_answers_status_and_reason_the_given_number_of_times(emu: Emu) -> None:
    service = emu.service(emu.account())
    answer = emu.admin.post(
        "/emulator/faults",
        json={"method": "events.list", "status": 429, "reason": "rateLimitExceeded", "times": 2},
    )
    assert answer.status_code == 201
    for _ in range(2):
        with pytest.raises(HttpError) as caught:
            service.events().list(calendarId="primary").execute()
        assert caught.value.resp.status == 429
        assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
    assert service.events().list(calendarId="primary").execute()["items"] == []
    # Other methods were never affected; calls that failed still count.
    assert emu.stats()["calls"]["events.list"] == 3


def test_a_fault_can_hit_one_calendar_only(emu: Emu) -> None:
    account = emu.account(calendars=[{"summary": "Team"}])
    service = emu.service(account)
    team = next(c["id"] for c in account.calendars if c["summary"] == "Team")
    answer = emu.admin.post(
        "/emulator/faults",
        json={"method": "events.list", "status": 404, "times": 5, "calendar_id": team},
    )
    assert answer.json()["calendar_id"] == team
    assert service.events().list(calendarId=account.email).execute()["items"] == []
    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId=team).execute()
    assert caught.value.resp.status == 404
    assert emu.stats()["calls"]["events.list"] == 2


def test_a_fault_can_say_retry_after(emu: Emu) -> None:
    account = emu.account()
    emu.admin.post(
        "/emulator/faults",
        json={"method": "events.list", "status": 429, "times": 1, "retry_after": 2},
    )
    answer = httpx.get(
        f"{emu.url}calendar/v3/calendars/primary/events",
        headers={"Authorization": f"Bearer {account.access_token}"},
    )
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "2"


def test_client_retries_through_injected_500s(emu: Emu) -> None:
    service = emu.service(emu.account())
    emu.admin.post("/emulator/faults", json={"method": "calendars.get", "status": 500, "times": 1})
    # The library waits rand() * 2**0 s (under a second) before its one retry.
    assert service.calendars().get(calendarId="primary").execute(num_retries=1)["id"]
    assert emu.stats()["calls"]["calendars.get"] == 2


@pytest.fixture
def recording() -> Iterator[tuple[Emu, list[float]]]:
    """A fresh emulator and the delays it waits before answering, recorded instead of taken."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    with run_emulator(EmulatorConfig(sleep=record)) as running:
        emu = Emu(running)
        try:
            yield emu, waits
        finally:
            emu.admin.close()


def test_delay_and_dropped_connection_and_clearing(recording: tuple[Emu, list[float]]) -> None:
    emu, waits = recording
    account = emu.account()
    service = emu.service(account)
    emu.admin.post(
        "/emulator/faults",
        json={"method": "calendars.get", "status": 200, "times": 1, "delay_ms": 300},
    )
    assert service.calendars().get(calendarId="primary").execute()["id"] == account.email
    assert waits == [0.3]
    # The fault was used up: the next call is answered without a wait.
    service.calendars().get(calendarId="primary").execute()
    assert waits == [0.3]
    emu.admin.post(
        "/emulator/faults",
        json={"method": "calendars.get", "status": 503, "times": 1, "drop_connection": True},
    )
    with pytest.raises((httpx.TransportError, httpx.RemoteProtocolError)):
        httpx.get(
            f"{emu.url}calendar/v3/calendars/primary",
            headers={"authorization": f"Bearer {account.access_token}"},
        )
    emu.admin.post("/emulator/faults", json={"method": "calendars.get", "status": 500, "times": 5})
    assert emu.admin.delete("/emulator/faults").status_code == 204
    assert service.calendars().get(calendarId="primary").execute()["id"] == account.email
    bad = emu.admin.post("/emulator/faults", json={"method": "x", "status": "500", "times": 1})
    assert bad.status_code == 400


def test_dropped_connection_reaches_the_client_library_as_a_transport_error(emu: Emu) -> None:
    service = emu.service(emu.account())
    emu.admin.post(
        "/emulator/faults",
        json={"method": "events.list", "status": 500, "times": 2, "drop_connection": True},
    )
    # httplib2 resends once on a closed connection by itself, so two drops reach the caller.
    with pytest.raises((ConnectionError, httplib2.HttpLib2Error)):
        service.events().list(calendarId="primary").execute()
    assert emu.stats()["calls"]["events.list"] == 2


def test_stats_reset(emu: Emu) -> None:
    service = emu.service(emu.account())
    service.calendarList().list().execute()
    assert emu.stats()["calls"] == {"calendarList.list": 1}
    emu.admin.post("/emulator/stats/reset")
    assert emu.stats() == {"requests": 0, "calls": {}, "total_calls": 0}


def test_per_user_rate_limit_answers_403_rate_limit_exceeded() -> None:
    with run_emulator(EmulatorConfig(rate_limit_per_minute=5)) as running:
        admin = httpx.Client(base_url=running.url)
        first = admin.post("/emulator/accounts", json={"email": "q1@example.com"}).json()
        second = admin.post("/emulator/accounts", json={"email": "q2@example.com"}).json()
        service = calendar_service(running.url, first["access_token"])
        for _ in range(5):
            service.calendars().get(calendarId="primary").execute()
        with pytest.raises(HttpError) as caught:
            service.calendars().get(calendarId="primary").execute()
        assert caught.value.resp.status == 403
        assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
        assert caught.value.error_details[0]["domain"] == "usageLimits"
        # Per user: someone else is not limited.
        other = calendar_service(running.url, second["access_token"])
        assert other.calendars().get(calendarId="primary").execute()["id"] == "q2@example.com"
        admin.close()


def test_the_quota_switches_on_at_a_scaled_window_and_counts_its_refusals() -> None:
    with run_emulator(EmulatorConfig()) as running, httpx.Client(base_url=running.url) as admin:
        made = admin.post("/emulator/accounts", json={"email": "scaled@example.com"}).json()
        service = calendar_service(running.url, made["access_token"])
        switched = admin.put("/emulator/quota", json={"per_minute": 3, "window_s": 0.5})
        assert switched.json() == {"per_minute": 3, "window_s": 0.5, "rejected": 0}
        for _ in range(3):
            service.calendars().get(calendarId="primary").execute()
        with pytest.raises(HttpError) as caught:
            service.calendars().get(calendarId="primary").execute()
        assert caught.value.resp.status == 403
        assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
        assert admin.get("/emulator/quota").json()["rejected"] == 1

        def passes() -> bool:  # once the scaled minute has gone by
            try:
                service.calendars().get(calendarId="primary").execute()
            except HttpError:
                return False
            return True

        wait_until(passes, timeout=5, interval=0.1, what="a call after the window")
        off = admin.put("/emulator/quota", json={"per_minute": None})
        assert off.json()["per_minute"] is None
        for _ in range(10):
            service.calendars().get(calendarId="primary").execute()
        assert admin.get("/emulator/quota").json()["rejected"] == 0
        bad = admin.put("/emulator/quota", json={"per_minute": 0})
        assert bad.status_code == 400
