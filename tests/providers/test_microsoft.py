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
from tests.providers.contract import ProviderContract
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


class TestMicrosoftContract(ProviderContract):
    pass


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
    assert calendars[work].name == "Work"
    assert calendars[work].writable
    assert not calendars[shared].writable
    assert provider.block_id("anything") is None


def _by_title(events: Any) -> dict[str, Any]:
    return {e.title: e for e in events}


def test_a_first_read_then_changes_in_calsyncs_words(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    cal = driver.default_calendar
    ids = {
        "busy": driver.add(cal, PersonEvent("busy", *at(0, 9))),
        "free": driver.add(cal, PersonEvent("free", *at(0, 11), free=True)),
        "gone": driver.add(cal, PersonEvent("gone", *at(1, 9))),
        "declined": driver.add(cal, PersonEvent("declined", *at(1, 11), declined=True)),
        "cancelled": driver.add(cal, PersonEvent("cancelled", *at(2, 9), cancelled=True)),
        "day": driver.add(cal, PersonEvent("day", MONDAY.date(), MONDAY.date() + timedelta(1))),
    }
    elsewhere = driver.admin.post(
        f"/emulator/accounts/{driver.email}/events",
        json={
            "calendar_id": cal,
            "subject": "elsewhere",
            "start": {"dateTime": "2026-03-04T08:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2026-03-04T17:00:00", "timeZone": "Pacific Standard Time"},
            "showAs": "workingElsewhere",
            "isOrganizer": False,
            "responseStatus": {"response": "tentativelyAccepted"},
            "attendees": [{"emailAddress": {"address": "Kim@Fabrikam.example", "name": "Kim"}}],
        },
    )
    assert elsewhere.status_code == 201, elsewhere.text
    first = provider.read_changes(cal, cursor=None, window=WINDOW)
    assert first.full
    assert first.cursor is not None
    seen = _by_title(first.events)
    assert set(seen) == {"busy", "free", "gone", "declined", "cancelled", "day", "elsewhere"}
    assert seen["busy"].busy
    assert seen["busy"].start == EventTime.at(at(0, 9)[0], "UTC")
    assert seen["busy"].start.instant == at(0, 9)[0]
    assert seen["busy"].version
    assert seen["busy"].updated is not None
    assert not seen["free"].busy
    assert seen["declined"].response is Response.DECLINED
    assert seen["cancelled"].cancelled
    assert seen["day"].all_day
    assert seen["day"].start.day == MONDAY.date()
    assert seen["day"].end.day == MONDAY.date() + timedelta(1)
    assert seen["elsewhere"].kind is EventKind.WORKING_ELSEWHERE
    assert seen["elsewhere"].response is Response.TENTATIVE
    assert seen["elsewhere"].attendees == ("kim@fabrikam.example",)
    assert seen["elsewhere"].start.instant == datetime(2026, 3, 4, 16, tzinfo=UTC)
    assert seen["elsewhere"].start.zone == "Pacific Standard Time"
    assert not any(e.is_block for e in first.events)

    driver.move(cal, ids["busy"], *at(0, 14))
    driver.delete(cal, ids["gone"])
    added = driver.add(cal, PersonEvent("added", *at(3, 9)))
    later = provider.read_changes(cal, cursor=first.cursor, window=WINDOW)
    assert not later.full
    assert later.cursor not in (None, first.cursor)
    assert {e.id for e in later.events} == {ids["busy"], added}
    assert _by_title(later.events)["busy"].start.instant == at(0, 14)[0]
    assert _by_title(later.events)["busy"].version != seen["busy"].version
    assert later.removed == (ids["gone"],)
    quiet = provider.read_changes(cal, cursor=later.cursor, window=WINDOW)
    assert quiet.events == ()
    assert quiet.removed == ()


def test_delta_pages_with_empty_pages_and_repeats(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    cal = driver.default_calendar
    made = {driver.add(cal, PersonEvent(f"e{n}", *at(n % 5, 8 + n))) for n in range(7)}
    provider.page_size = 2
    driver.admin.post("/emulator/stats/reset")
    changes = provider.read_changes(cal, cursor=None, window=WINDOW)
    # An empty page first, then 7 items 2 a page, each page after the first repeating the
    # last item of the one before: 1 + 4 pages, every item once in the change set.
    assert stats(driver)["calls"]["calendarView.delta"] == 5
    assert sorted(e.id for e in changes.events) == sorted(made)
    assert changes.removed == ()
    assert provider.stats.calls == 5


def test_an_expired_or_unknown_cursor_says_so(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    cal = driver.default_calendar
    driver.add(cal, PersonEvent("one", *at(0, 9)))
    cursor = provider.read_changes(cal, cursor=None, window=WINDOW).cursor
    assert cursor is not None
    driver.expire_cursor(cal)
    with pytest.raises(ProviderError) as expired:
        provider.read_changes(cal, cursor=cursor, window=WINDOW)
    assert expired.value.kind is ErrorKind.CURSOR_EXPIRED
    unknown = cursor.split("$deltatoken=")[0] + "$deltatoken=nothing-we-issued"
    with pytest.raises(ProviderError) as invalid:
        provider.read_changes(cal, cursor=unknown, window=WINDOW)
    assert invalid.value.kind is ErrorKind.CURSOR_EXPIRED
    again = provider.read_changes(cal, cursor=None, window=WINDOW)
    assert [e.title for e in again.events] == ["one"]


def test_a_series_master_in_delta_is_expanded_through_instances() -> None:
    config = GraphEmulatorConfig(delta_series_masters=True)
    with run_graph_emulator(config) as running:
        person = MicrosoftDriver(GraphEndpoints(running.url, running.tls_url, str(running.ca_path)))
        provider = person.provider()
        try:
            cal = person.default_calendar
            series = person.add(
                cal, PersonEvent("daily", *at(0, 9), recurrence="FREQ=DAILY;COUNT=4")
            )
            single = person.add(cal, PersonEvent("single", *at(1, 15)))
            first = provider.read_changes(cal, cursor=None, window=WINDOW)
            assert first.series_replaced == (series,)
            occurrences = [e for e in first.events if e.series_id == series]
            assert sorted(e.start.instant for e in occurrences if e.start.instant) == [
                at(d, 9)[0] for d in range(4)
            ]
            assert {e.id for e in first.events} - {e.id for e in occurrences} == {single}
            assert series not in {e.id for e in first.events}
            person.cancel_occurrence(cal, series, at(2, 9)[0])
            later = provider.read_changes(cal, cursor=first.cursor, window=WINDOW)
            if later.series_replaced:
                assert later.series_replaced == (series,)
                kept = {e.start.instant for e in later.events if e.series_id == series}
                assert at(2, 9)[0] not in kept
                assert len(kept) == 3
            else:
                assert len(later.removed) == 1
            assert person.admin.get("/emulator/stats").json()["calls"]["events.instances"] >= 1
        finally:
            provider.close()
            person.close()
