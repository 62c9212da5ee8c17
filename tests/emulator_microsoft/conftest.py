"""The Graph emulator tier: one emulator per test module on free ports, driven only over real
HTTP (httpx, and MSAL for sign-in); every test makes its own accounts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator

# Graph's timings, shortened where a test would otherwise wait on them.
FAST = GraphEmulatorConfig(
    push_delay_s=0.01,
    push_retry_base_s=0.05,
    notification_timeout_s=0.5,
    validation_timeout_s=2.0,
    lifecycle_poll_s=0.1,
)
PREFER_UTC_IMMUTABLE = 'outlook.timezone="UTC", IdType="ImmutableId"'


@dataclass
class Account:
    email: str
    oid: str
    tenant_id: str
    access_token: str
    refresh_token: str
    calendars: list[dict[str, Any]]

    @property
    def default_calendar(self) -> str:
        return str(self.calendars[0]["id"])


class Graph:
    """A running emulator, its admin API, and Graph clients for accounts."""

    def __init__(self, url: str, tls_url: str, ca_path: str) -> None:
        self.url = url
        self.tls_url = tls_url
        self.ca_path = ca_path
        self.admin = httpx.Client(base_url=url, timeout=10)
        self._clients: list[httpx.Client] = []

    def account(self, calendars: list[dict[str, Any]] | None = None, **extra: Any) -> Account:
        body: dict[str, Any] = {"email": f"user-{uuid.uuid4().hex[:10]}@contoso.example"}
        body.update(extra)
        if calendars is not None:
            body["calendars"] = calendars
        answer = self.admin.post("/emulator/accounts", json=body)
        assert answer.status_code == 201, answer.text
        data = answer.json()
        return Account(
            data["email"],
            data["oid"],
            data["tenant_id"],
            data["access_token"],
            data["refresh_token"],
            data["calendars"],
        )

    def client(self, account: Account, prefer: str | None = PREFER_UTC_IMMUTABLE) -> httpx.Client:
        headers = {"authorization": f"Bearer {account.access_token}"}
        if prefer:
            headers["prefer"] = prefer
        client = httpx.Client(base_url=f"{self.url}v1.0", headers=headers, timeout=10)
        self._clients.append(client)
        return client

    def advance(self, seconds: float) -> None:
        answer = self.admin.post("/emulator/clock/advance", json={"seconds": seconds})
        assert answer.status_code == 200, answer.text

    def fault(self, **body: Any) -> None:
        answer = self.admin.post("/emulator/faults", json=body)
        assert answer.status_code == 201, answer.text

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.admin.close()


@pytest.fixture(scope="module")
def graph() -> Iterator[Graph]:
    with run_graph_emulator(FAST) as running:
        world = Graph(running.url, running.tls_url, str(running.ca_path))
        try:
            yield world
        finally:
            world.close()


def timed(day: str, start: str, end: str, zone: str = "Pacific Standard Time") -> dict[str, Any]:
    """start/end of a timed event on `day` in `zone` (Windows or IANA name)."""
    return {
        "start": {"dateTime": f"{day}T{start}:00", "timeZone": zone},
        "end": {"dateTime": f"{day}T{end}:00", "timeZone": zone},
    }


def event(subject: str = "Meeting", **extra: Any) -> dict[str, Any]:
    return {"subject": subject, **timed("2026-03-03", "10:00", "11:00"), **extra}
