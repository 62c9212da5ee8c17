"""calsync's Microsoft Graph provider against the Graph emulator over real HTTP (MSAL sign-in
over TLS included): reading, blocks, batching, limits, push and the notification parser."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from calsync_server.providers.microsoft import CAPABILITIES, MicrosoftProvider, parse_notification
from calsync_server.providers.microsoft.mapping import transaction_id
from calsync_server.providers.model import (
    BlockAction,
    BlockContent,
    BlockIds,
    BlockOp,
    ErrorKind,
    EventKind,
    EventTime,
    Handshake,
    NoticeKind,
    ProviderError,
    PushKind,
    Response,
    Subscription,
)
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.microsoft import GraphEndpoints, MicrosoftDriver
from tests.support.push_receiver import PushReceiver, push_receiver
from tests.support.waiting import wait_until

FAST = GraphEmulatorConfig(
    push_delay_s=0.01,
    push_retry_base_s=0.05,
    notification_timeout_s=0.5,
    validation_timeout_s=2.0,
    lifecycle_poll_s=0.1,
)
# A fixed week, far from today: the tests do not depend on the hour they run.
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = (MONDAY - timedelta(days=7), MONDAY + timedelta(days=28))


@pytest.fixture(scope="module")
def endpoints() -> Iterator[GraphEndpoints]:
    with run_graph_emulator(FAST) as running:
        yield GraphEndpoints(running.url, running.tls_url, str(running.ca_path))


@pytest.fixture
def driver(endpoints: GraphEndpoints) -> Iterator[MicrosoftDriver]:
    made = MicrosoftDriver(endpoints)
    try:
        yield made
    finally:
        made.admin.delete("/emulator/faults")
        made.close()


@pytest.fixture
def provider(driver: MicrosoftDriver) -> Iterator[MicrosoftProvider]:
    made = driver.provider()
    try:
        yield made
    finally:
        made.close()


def at(day: int, hour: int, minutes: int = 60) -> tuple[datetime, datetime]:
    start = MONDAY + timedelta(days=day, hours=hour)
    return start, start + timedelta(minutes=minutes)


def content(key: str, day: int = 0, hour: int = 9, title: str = "Busy") -> BlockContent:
    start, end = at(day, hour)
    return BlockContent(title, EventTime.at(start), EventTime.at(end), key)


def create(calendar_id: str, key: str, **more: Any) -> BlockOp:
    return BlockOp(
        BlockAction.CREATE, calendar_id, content=content(key, **more), digest=f"digest-{key}"
    )


def stats(driver: MicrosoftDriver) -> dict[str, Any]:
    found: dict[str, Any] = driver.admin.get("/emulator/stats").json()
    return found


def test_capabilities_are_graphs() -> None:
    assert CAPABILITIES.block_ids is BlockIds.SERVER
    assert CAPABILITIES.push is PushKind.SUBSCRIPTION
    assert CAPABILITIES.renew_in_place
    assert CAPABILITIES.batch_size == 20
    assert CAPABILITIES.max_concurrency == 4
    assert CAPABILITIES.push_lifetime == timedelta(minutes=4200)


def test_calendars_listed_in_calsyncs_words(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    work = driver.new_calendar("Work")
    shared = driver.new_calendar("Team holidays", read_only=True)
    calendars = {c.id: c for c in provider.list_calendars()}
    assert set(calendars) == {driver.default_calendar, work, shared}
    assert calendars[driver.default_calendar].primary
    assert calendars[work].name == "Work" and calendars[work].writable
    assert not calendars[shared].writable
    assert provider.block_id("anything") is None
