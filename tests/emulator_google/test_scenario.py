"""The demo scenario, its live mode, and `calsync emulator` as a user starts it."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from calsync_server.emulators.google import scenario
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import RunningEmulator, run_emulator
from tests.support.google_service import calendar_service
from tests.support.push_receiver import push_receiver
from tests.support.waiting import wait_until


def _sign_in(url: str, email: str) -> str:
    """An access token for a seeded account, the way calsync gets one: OAuth with PKCE."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    redirect = "http://127.0.0.1:9/cb"
    answer = httpx.get(
        f"{url}o/oauth2/auth",
        params={
            "client_id": "demo",
            "redirect_uri": redirect,
            "response_type": "code",
            "login_hint": email,
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
        },
    )
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    tokens = httpx.post(
        f"{url}token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": redirect,
        },
    ).json()
    return str(tokens["access_token"])


@pytest.fixture
def demo() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig(scenario="demo")) as running:
        yield running


def test_demo_has_two_accounts_in_two_time_zones_with_several_calendars(
    demo: RunningEmulator,
) -> None:
    work = calendar_service(demo.url, _sign_in(demo.url, scenario.WORK))
    personal = calendar_service(demo.url, _sign_in(demo.url, scenario.PERSONAL))
    work_calendars = work.calendarList().list().execute()["items"]
    personal_calendars = personal.calendarList().list().execute()["items"]
    assert len(work_calendars) == 3
    assert len(personal_calendars) == 2
    assert {c["accessRole"] for c in work_calendars} == {"owner", "reader"}
    assert {work_calendars[0]["timeZone"], personal_calendars[0]["timeZone"]} == {
        scenario.WORK_TZ,
        scenario.PERSONAL_TZ,
    }


def test_demo_fortnight_has_every_kind_of_event(demo: RunningEmulator) -> None:
    work = calendar_service(demo.url, _sign_in(demo.url, scenario.WORK))
    items: list[dict[str, Any]] = (
        work.events()
        .list(calendarId="primary", singleEvents=True, showDeleted=True, maxResults=2500)
        .execute()["items"]
    )
    live = [i for i in items if i.get("status") != "cancelled"]
    types = {i["eventType"] for i in live}
    assert {"outOfOffice", "focusTime", "workingLocation", "default"} <= types
    assert any(i.get("transparency") == "transparent" and i["eventType"] == "default" for i in live)
    declined = [
        i
        for i in live
        if any(a.get("self") and a["responseStatus"] == "declined" for a in i.get("attendees", []))
    ]
    assert declined
    assert not declined[0]["organizer"].get("self")
    assert any("date" in i["start"] for i in live)
    moved = [i for i in live if i.get("recurringEventId") and i["start"] != i["originalStartTime"]]
    assert moved, "a moved instance"
    cancelled = [i for i in items if i.get("status") == "cancelled" and i.get("recurringEventId")]
    assert cancelled, "a cancelled instance"
    # Both series recur weekly or daily.
    masters = work.events().list(calendarId="primary").execute()["items"]
    rules = " ".join(r for m in masters for r in m.get("recurrence", []))
    assert "FREQ=WEEKLY" in rules


def test_live_mode_changes_calendars_and_pushes() -> None:
    config = EmulatorConfig(scenario="demo", live=True, live_interval_s=0.1)
    with run_emulator(config) as running, push_receiver() as receiver:
        work = calendar_service(running.url, _sign_in(running.url, scenario.WORK))
        personal = calendar_service(running.url, _sign_in(running.url, scenario.PERSONAL))
        for service, calendar_id in (
            (work, "primary"),
            (work, scenario.PROJECTS),
            (personal, "primary"),
        ):
            service.events().watch(
                calendarId=calendar_id,
                body={"id": secrets.token_hex(8), "type": "web_hook", "address": receiver.url},
            ).execute()
        # Changes made by the scenario itself, not through the API, reach push channels.
        wait_until(lambda: len(receiver.notifications("exists")) >= 2, timeout=20)


def test_personal_scenario_is_the_personal_calendar_alone_and_lives_there() -> None:
    """The three-provider demo's Google side: Alex's personal account only (work is on
    Microsoft 365, the family calendar on CalDAV), and every live change lands in it."""
    with run_emulator(EmulatorConfig(scenario="personal")) as running:
        store = running.emulator.store
        assert sorted(store.accounts) == [scenario.PERSONAL]
        personal = calendar_service(running.url, _sign_in(running.url, scenario.PERSONAL))
        calendars = personal.calendarList().list().execute()["items"]
        assert [c["id"] for c in calendars] == [scenario.PERSONAL]
        items = personal.events().list(calendarId="primary").execute()["items"]
        assert {"Yoga", "Dentist"} <= {i["summary"] for i in items}
        changes = scenario.LiveChanges(store, interval_s=0)
        said = [changes.step() for _ in range(12)]
        assert all(f"in {scenario.PERSONAL}" in line for line in said), said


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_calsync_emulator_command_serves_the_demo() -> None:
    port = _free_port()
    calsync = os.path.join(os.path.dirname(sys.executable), "calsync")
    process = subprocess.Popen(
        [calsync, "emulator", "--host", "127.0.0.1", "--port", str(port), "--scenario", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"{url}emulator/stats", timeout=1).status_code == 200
            except httpx.HTTPError:
                return process.poll() is None and False

        wait_until(answers, timeout=30, what="calsync emulator to answer")
        service = calendar_service(url, _sign_in(url, scenario.WORK))
        assert service.calendars().get(calendarId="primary").execute()["id"] == scenario.WORK
    finally:
        process.terminate()
        process.wait(timeout=10)
    help_text = subprocess.run(
        [calsync, "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "emulator" in help_text
