"""The emulator tier: a fresh emulator on a free port per test, driven over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from calsync_server.emulators.google.runner import RunningEmulator, run_emulator
from tests.support.google_service import calendar_service


@dataclass
class Account:
    email: str
    access_token: str
    refresh_token: str
    calendars: list[dict[str, str]]


class Emu:
    """A running emulator plus what tests do with it: admin calls and client services."""

    def __init__(self, running: RunningEmulator) -> None:
        self.running = running
        self.url = running.url
        self.admin = httpx.Client(base_url=running.url, timeout=10)

    def account(
        self, email: str | None = None, calendars: list[dict[str, Any]] | None = None
    ) -> Account:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        body: dict[str, Any] = {"email": email}
        if calendars is not None:
            body["calendars"] = calendars
        answer = self.admin.post("/emulator/accounts", json=body)
        assert answer.status_code == 201, answer.text
        data = answer.json()
        return Account(
            data["email"], data["access_token"], data["refresh_token"], data["calendars"]
        )

    def service(self, account: Account) -> Any:
        return calendar_service(self.url, account.access_token)

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.admin.get("/emulator/stats").json()
        return data


@pytest.fixture
def emu() -> Iterator[Emu]:
    with run_emulator() as running:
        world = Emu(running)
        try:
            yield world
        finally:
            world.admin.close()


def timed(day: str, start: str, end: str, tz: str = "Europe/Berlin") -> dict[str, Any]:
    """start/end fields of a timed event on `day` in `tz`."""
    return {
        "start": {"dateTime": f"{day}T{start}:00", "timeZone": tz},
        "end": {"dateTime": f"{day}T{end}:00", "timeZone": tz},
    }
