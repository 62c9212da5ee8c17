"""The `demo` scenario (Alex Morgan's work mailbox, a fortnight around the emulator's today),
`--live`, and `calsync emulator --provider microsoft` itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from tests.support.waiting import wait_until

WORK = "alex.morgan@contoso.example"


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[str, httpx.Client]]:
    config = GraphEmulatorConfig(scenario="demo", live=True, live_interval_s=0.2)
    with run_graph_emulator(config) as running:
        # The demo account's tokens come from signing in: the token endpoint over plain HTTP
        # with a code from the authorize step (MSAL's own sign-in is tested elsewhere).
        with httpx.Client(base_url=running.url, timeout=10) as admin:
            consent = admin.get(
                "/common/oauth2/v2.0/authorize",
                params={
                    "client_id": "demo",
                    "redirect_uri": "http://localhost/cb",
                    "login_hint": WORK,
                },
            )
            code = re.search(r"code=([^&]+)", consent.headers["location"])
            assert code is not None
            tokens = admin.post(
                "/common/oauth2/v2.0/token",
                data={
                    "grant_type": "authorization_code",
                    "client_id": "demo",
                    "code": httpx.QueryParams(f"c={code.group(1)}")["c"],
                    "redirect_uri": "http://localhost/cb",
                },
            ).json()
        with httpx.Client(
            base_url=f"{running.url}v1.0",
            headers={"authorization": f"Bearer {tokens['access_token']}"},
            timeout=10,
        ) as client:
            yield running.url, client


def _fortnight(client: httpx.Client, calendar: str | None = None) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    path = f"/me/calendars/{calendar}/calendarView" if calendar else "/me/calendarView"
    values: list[dict[str, Any]] = client.get(
        path,
        params={
            "startDateTime": (now - timedelta(days=15)).isoformat(),
            "endDateTime": (now + timedelta(days=15)).isoformat(),
            "$top": 500,
        },
    ).json()["value"]
    return values


def test_the_demo_fortnight(demo: tuple[str, httpx.Client]) -> None:
    _, client = demo
    assert client.get("/me").json()["displayName"] == "Alex Morgan"
    assert client.get("/me/mailboxSettings").json()["timeZone"] == "GMT Standard Time"
    calendars = client.get("/me/calendars").json()["value"]
    assert [c["canEdit"] for c in calendars] == [True, True, False]
    events = _fortnight(client)
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for item in events:
        by_subject.setdefault(item["subject"], []).append(item)
    standups = by_subject["Team stand-up"]
    assert "exception" in {s["type"] for s in standups}  # the moved one
    one_to_ones = by_subject["1:1 with Sam"]
    assert len(one_to_ones) < 5  # one was cancelled
    assert by_subject["Quarterly business review"][0]["responseStatus"]["response"] == "declined"
    assert by_subject["Lunch & learn (optional)"][0]["showAs"] == "free"
    assert by_subject["Out of office"][0]["showAs"] == "oof"
    assert by_subject["Out of office"][0]["isAllDay"] is True
    assert by_subject["Working from the Manchester office"][0]["showAs"] == "workingElsewhere"
    assert by_subject["Vendor sync (cancelled by organizer)"][0]["isCancelled"] is True
    assert events[0]["originalStartTimeZone"] == "GMT Standard Time"
    projects = _fortnight(client, calendars[1]["id"])
    assert any(e["subject"] == "Release 2.0" and e["isAllDay"] for e in projects)


def test_live_changes_something_every_few_seconds(demo: tuple[str, httpx.Client]) -> None:
    _, client = demo
    wait_until(
        lambda: any(e["subject"].startswith("Live change") for e in _fortnight(client)),
        what="a live change",
    )


def test_the_command_line_serves_the_microsoft_emulator() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "calsync_server.cli",
            "emulator",
            "--provider",
            "microsoft",
            "--port",
            "0",
            "--scenario",
            "demo",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"at (http://\S+)v1\.0/", first)
        assert match, first
        authority = process.stdout.readline()
        ca = process.stdout.readline().split(": ", 1)[1].strip()
        tls = re.search(r"(https://\S+)common", authority)
        assert tls, authority
        config = httpx.get(f"{tls.group(1)}common/v2.0/.well-known/openid-configuration", verify=ca)
        assert config.json()["token_endpoint"].startswith(tls.group(1))
        stats = httpx.get(f"{match.group(1)}emulator/stats")
        assert stats.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
