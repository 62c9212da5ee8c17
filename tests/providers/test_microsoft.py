"""calsync's Microsoft Graph provider against the Graph emulator over real HTTP (MSAL sign-in
over TLS included): reading, blocks, batching, limits, push and the notification parser."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync_server.emulators.microsoft.config import Clock, GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from calsync_server.providers.microsoft import CAPABILITIES, MicrosoftProvider, parse_notification
from calsync_server.providers.microsoft.mapping import transaction_id
from calsync_server.providers.microsoft.provider import owner_addresses
from calsync_server.providers.microsoft.wire import Me
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
from calsync_server.providers.registry import ProviderConfig, provider_factory
from calsync_server.providers.retry import RetryPolicy
from shared.clock import FixedClock
from tests.providers.contract import ProviderContract
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.microsoft import GraphEndpoints, MicrosoftDriver
from tests.support.fault_proxy import FaultProxy
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


def _is_a_driver(made: MicrosoftDriver) -> Driver:
    return made  # mypy checks the driver keeps the protocol


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


def test_the_mailbox_owners_addresses_from_me_once(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    """The "already there" rule's addresses: /me's mail and user principal name, asked once."""
    assert provider.known_owner_addresses() is None
    assert provider.owner_addresses() == {driver.email.lower()}
    calls = provider.stats.calls
    assert provider.owner_addresses() == {driver.email.lower()}
    assert provider.stats.calls == calls
    assert provider.known_owner_addresses() == {driver.email.lower()}
    # A work mailbox: its UPN, its mail and its SMTP aliases; other kinds are no addresses.
    me = Me(
        mail="Pat.Lee@contoso.example",
        userPrincipalName="pat@contoso.onmicrosoft.example",
        proxyAddresses=["SMTP:Pat.Lee@contoso.example", "smtp:pl@contoso.example", "SIP:p@x"],
    )
    assert owner_addresses(me) == {
        "pat.lee@contoso.example",
        "pat@contoso.onmicrosoft.example",
        "pl@contoso.example",
    }
    assert owner_addresses(Me(userPrincipalName="pat_contoso#EXT#")) == frozenset()


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


def test_a_zoned_series_starting_after_local_midnight_begins_on_its_own_day(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    # 00:30 in Berlin is 23:30 UTC the day before: the series (and its range's startDate, which
    # Graph wants equal to the start's date) is on the person's day, not UTC's.
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 3, 3, 0, 30, tzinfo=berlin)
    cal = driver.default_calendar
    driver.add(
        cal,
        PersonEvent("early", first, first + timedelta(hours=1), recurrence="FREQ=DAILY;COUNT=3"),
    )
    expected = [(first + timedelta(days=d)).astimezone(UTC) for d in range(3)]
    assert sorted(e["start"] for e in driver.events(cal)) == expected  # type: ignore[type-var]
    read = provider.read_changes(cal, cursor=None, window=WINDOW)
    assert sorted(e.start.instant for e in read.events if e.start.instant) == expected


# -- blocks -------------------------------------------------------------------------------------


def test_a_create_retried_with_its_transaction_id_gives_one_event(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    cal = driver.default_calendar
    op = create(cal, "retried")
    # The first try's answer is lost (a crash, a timeout): the engine sends the same op again.
    [first] = provider.apply([op])
    [second] = provider.apply([op])
    assert first.block is not None
    assert second.block is not None
    assert second.block.id == first.block.id
    assert first.block.block_source == "retried"
    held = [e for e in driver.events(cal) if e["mark"]]
    assert len(held) == 1
    assert held[0]["mark"] == "retried"
    assert held[0]["transaction_id"] == transaction_id("digest-retried")
    assert held[0]["private"]
    assert held[0]["reminder"] is False
    assert held[0]["attendees"] == []
    # A GUID, the shape Graph documents, whatever the digest looks like; the same each time.
    assert len(transaction_id("x" * 300)) == 36
    assert transaction_id("digest-retried") == transaction_id("digest-retried")


def test_a_duplicate_that_slipped_through_is_found_by_the_mark(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    cal = driver.default_calendar
    driver.add(cal, PersonEvent("Busy", *at(0, 9)))  # the person's own, titled like a block
    # Two creates of one source with different digests (a lost row, a new transaction window).
    one = provider.apply([create(cal, "dup", hour=9)])[0].block
    two = provider.apply([BlockOp(BlockAction.CREATE, cal, content=content("dup", hour=9))])[
        0
    ].block
    assert one is not None
    assert two is not None
    assert one.id != two.id
    driver.retitle(cal, one.id, "Renamed by hand")
    found = provider.list_blocks(cal, window=WINDOW)
    assert sorted(b.id for b in found) == sorted([one.id, two.id])
    assert {b.block_source for b in found} == {"dup"}
    assert {b.title for b in found} == {"Busy", "Renamed by hand"}
    # Outside the window: not listed.
    assert (
        provider.list_blocks(cal, window=(MONDAY + timedelta(days=60), MONDAY + timedelta(90)))
        == []
    )


def test_over_20_ops_go_in_batches_and_a_throttled_item_waits_its_retry_after(
    driver: MicrosoftDriver,
) -> None:
    cal = driver.default_calendar
    ops = [create(cal, f"b{n}", day=n % 7, hour=n % 12) for n in range(45)]
    driver.admin.post("/emulator/stats/reset")
    driver.admin.post(
        "/emulator/faults",
        json={"method": "events.create", "status": 429, "times": 2, "retry_after": 3},
    )
    # The waits the provider asks for, recorded instead of taken.
    waits: list[float] = []
    provider = driver.provider(sleep=waits.append)
    try:
        results = provider.apply(ops)
    finally:
        provider.close()
    assert [r.op for r in results] == ops
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    counted = stats(driver)["calls"]
    # 45 = 20 + 20 + 5, and the two throttled items once more (in one batch or two).
    assert 4 <= counted["$batch"] <= 5
    assert counted["events.create"] == 47
    # Each batch with a throttled item waits its Retry-After (3 s: longer than any backoff of
    # a first retry, at most 0.5 s) before sending it again.
    assert 1 <= len(waits) <= 2
    assert waits == [3.0] * len(waits), f"the item's Retry-After was not honoured: {waits}"
    assert provider.stats.retries == 2
    assert "retried after 429" in provider.stats.notes
    marks = sorted(str(e["mark"]) for e in driver.events(cal) if e["mark"])
    assert marks == sorted(f"b{n}" for n in range(45))


def test_update_if_match_delete_gone_and_read(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    cal = driver.default_calendar
    made = provider.apply([create(cal, "u")])[0].block
    assert made is not None
    moved = content("u", day=1, hour=15, title="Busy - Review")
    [updated] = provider.apply(
        [BlockOp(BlockAction.UPDATE, cal, made.id, moved, version=made.version)]
    )
    assert updated.block is not None
    assert updated.block.start.instant == at(1, 15)[0]
    [stale] = provider.apply(
        [BlockOp(BlockAction.UPDATE, cal, made.id, moved, version=made.version)]
    )
    assert stale.error is not None
    assert stale.error.kind is ErrorKind.STALE
    [read] = provider.apply([BlockOp(BlockAction.READ, cal, made.id)])
    assert read.block is not None
    assert read.block.block_source == "u"
    assert read.block.title == "Busy - Review"
    assert read.block.version == updated.block.version
    delete = BlockOp(BlockAction.DELETE, cal, made.id)
    assert provider.apply([delete])[0].ok
    [gone, gone_read] = provider.apply([delete, BlockOp(BlockAction.READ, cal, made.id)])
    assert gone.error is not None
    assert gone.error.kind is ErrorKind.GONE
    assert gone_read.error is not None
    assert gone_read.error.kind is ErrorKind.GONE
    [invalid] = provider.apply([BlockOp(BlockAction.UPDATE, cal, None, moved)])
    assert invalid.error is not None
    assert invalid.error.kind is ErrorKind.INVALID


def test_at_most_four_requests_in_flight_for_a_mailbox(driver: MicrosoftDriver) -> None:
    """Slow answers hold Graph's concurrency slots: a burst of 12 calls from two providers of
    one account never meets the mailbox's limit of 4 (the emulator would answer 429)."""
    providers = [driver.provider(), driver.provider()]
    driver.admin.post(
        "/emulator/faults",
        json={"method": "calendars.list", "status": 200, "times": 12, "delay_ms": 300},
    )
    start = threading.Barrier(12)

    def burst(n: int) -> int:
        start.wait()
        return len(providers[n % 2].list_calendars())

    try:
        with ThreadPoolExecutor(12) as pool:
            assert list(pool.map(burst, range(12))) == [1] * 12
        assert [p.stats.retries for p in providers] == [0, 0]
        assert sum(p.stats.requests for p in providers) == 12
    finally:
        for p in providers:
            p.close()


def test_transient_failures_and_dropped_connections_are_retried(
    driver: MicrosoftDriver, provider: MicrosoftProvider
) -> None:
    driver.fail_next(ErrorKind.TRANSIENT, times=1)
    driver.admin.post(
        "/emulator/faults",
        json={"method": "calendars.list", "status": 503, "times": 1, "retry_after": 0},
    )
    driver.admin.post(
        "/emulator/faults",
        json={"method": "calendars.list", "status": 0, "times": 1, "drop_connection": True},
    )
    assert len(provider.list_calendars()) == 1
    assert provider.stats.retries == 3
    assert {"retried after 429", "retried after 503", "retried after a dropped connection"} <= set(
        provider.stats.notes
    )
    driver.admin.post(
        "/emulator/faults",
        json={"method": "calendars.list", "status": 503, "times": 9, "retry_after": 0},
    )
    with pytest.raises(ProviderError) as exhausted:
        provider.list_calendars()
    assert exhausted.value.kind is ErrorKind.TRANSIENT
    assert exhausted.value.retry_after == 0


def test_a_stalled_answer_times_out_after_the_configured_seconds(
    endpoints: GraphEndpoints, driver: MicrosoftDriver
) -> None:
    """The provider factory gives Graph's client the configured timeout, as Google's and
    CalDAV's: a stalled answer is a timeout retried like a dropped connection, not a wait of
    the client's own 30 s (the season's Graph timeouts rely on it)."""
    config = ProviderConfig(
        "http://127.0.0.1:9/unused",
        RetryPolicy(attempts=2, base_seconds=0.01, max_seconds=0.05),
        timeout=0.5,
        microsoft_graph_url=f"{endpoints.url}v1.0",
        microsoft_login_url=endpoints.tls_url,
        microsoft_ca_file=endpoints.ca_path,
    )
    login = driver.login("")
    provider = provider_factory(config)(login.provider, None, login.credentials)
    assert isinstance(provider, MicrosoftProvider)
    try:
        provider.list_calendars()  # signed in: the token is fetched before the stall
        driver.admin.post(
            "/emulator/faults",
            json={"method": "calendars.list", "status": 200, "times": 1, "delay_ms": 3000},
        )
        assert len(provider.list_calendars()) == 1
        assert provider.stats.retries == 1
        assert "retried after a dropped connection" in provider.stats.notes
    finally:
        provider.close()


# A fixed instant years from the wall clock: what a provider dates by it cannot be the wall's.
FIXED_NOW = datetime(2031, 1, 1, tzinfo=UTC)


def test_an_http_date_retry_after_counts_from_the_factorys_clock(
    endpoints: GraphEndpoints, driver: MicrosoftDriver
) -> None:
    """Retry-After as an HTTP date (RFC 9110; Graph says seconds, a proxy on the way may say
    a date) is a wait from the engine's clock, which the factory hands the provider with the
    sleep it waits with."""
    proxy = FaultProxy(endpoints.url)
    waits: list[float] = []
    config = ProviderConfig(
        "http://127.0.0.1:9/unused",
        microsoft_graph_url=f"{proxy.url}/v1.0",
        microsoft_login_url=endpoints.tls_url,
        microsoft_ca_file=endpoints.ca_path,
        clock=FixedClock(FIXED_NOW),
        sleep=waits.append,
    )
    login = driver.login("")
    provider = provider_factory(config)(login.provider, None, login.credentials)
    assert isinstance(provider, MicrosoftProvider)
    try:
        proxy.fail_next(503, retry_after="Wed, 01 Jan 2031 00:00:07 GMT")
        assert len(provider.list_calendars()) == 1
    finally:
        provider.close()
        proxy.close()
    assert waits == [7.0]
    assert provider.stats.retries == 1


def test_a_rotated_token_cache_is_handed_back(driver: MicrosoftDriver) -> None:
    before = driver.token_cache
    provider = driver.provider()
    try:
        assert isinstance(provider.tokens, object)
        provider.tokens.token(force_refresh=True)
        assert driver.token_cache != before  # the new refresh token, to seal away
        assert provider.list_calendars()
    finally:
        provider.close()
    driver.refuse_login()
    refused = driver.provider()
    try:
        with pytest.raises(ProviderError) as auth:
            refused.list_calendars()
    finally:
        refused.close()
    assert auth.value.kind is ErrorKind.AUTH


# -- push ---------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    with push_receiver() as running:
        yield running


def _subscriptions(driver: MicrosoftDriver) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in driver.admin.get("/emulator/subscriptions").json()}


def test_subscribe_notify_renew_and_unsubscribe(
    driver: MicrosoftDriver, provider: MicrosoftProvider, receiver: PushReceiver
) -> None:
    cal = driver.new_calendar("Pushed")
    made = provider.subscribe(
        cal, address=receiver.url, secret="s3cret", lifetime=timedelta(days=7)
    )
    # Graph's most for Outlook events, not the 7 days asked for: on a fixed clock in
    # test_a_subscriptions_expiry_is_dated_by_the_factorys_clock.
    assert made.expires_at is not None
    assert made.resource == f"me/calendars/{cal}/events"
    held = _subscriptions(driver)[made.remote_id]
    assert held["calendar_id"] == cal
    assert held["lifecycle_url"] == receiver.url
    # Graph validated the address before answering; the parser answers such a request.
    [token] = receiver.validations[:1]
    assert parse_notification({"validationToken": token}, b"") == Handshake(token)

    driver.add(cal, PersonEvent("Planning", *at(0, 10)))
    wait_until(receiver.graph_values, what="a change notification")
    notices = [
        n
        for body in (r.body for r in receiver.received)
        for n in parse_notification({}, body)  # type: ignore[union-attr]
    ]
    assert notices
    assert {(n.remote_id, n.kind, n.secret) for n in notices} == {
        (made.remote_id, NoticeKind.CHANGED, "s3cret")
    }

    driver.admin.post(
        f"/emulator/subscriptions/{made.remote_id}/lifecycle",
        json={"event": "reauthorizationRequired"},
    )
    lifecycle = wait_until(
        lambda: [v for v in receiver.graph_values() if "lifecycleEvent" in v], what="lifecycle"
    )
    [reauthorize] = parse_notification({}, json.dumps({"value": lifecycle}).encode())  # type: ignore[misc]
    assert reauthorize.kind is NoticeKind.REAUTHORIZE
    renewed = provider.renew(made, lifetime=timedelta(hours=1))
    assert renewed.remote_id == made.remote_id
    assert renewed.expires_at is not None
    assert renewed.expires_at < made.expires_at

    provider.unsubscribe(made)
    assert made.remote_id not in _subscriptions(driver)
    provider.unsubscribe(made)  # gone already: fine
    with pytest.raises(ProviderError) as gone:
        provider.renew(made, lifetime=timedelta(hours=1))
    assert gone.value.kind is ErrorKind.GONE
    stranger = Subscription("no-such-subscription", None)
    with pytest.raises(ProviderError) as missing:
        provider.renew(stranger, lifetime=timedelta(hours=1))
    assert missing.value.kind is ErrorKind.GONE


@pytest.fixture(scope="module")
def endpoints_2031() -> Iterator[GraphEndpoints]:
    """A Graph emulator whose clock runs from FIXED_NOW (it refuses an expiry in its past)."""
    config = dataclasses.replace(FAST, clock=Clock(FIXED_NOW))
    with run_graph_emulator(config) as running:
        yield GraphEndpoints(running.url, running.tls_url, str(running.ca_path))


def test_a_subscriptions_expiry_is_dated_by_the_factorys_clock(
    endpoints_2031: GraphEndpoints, receiver: PushReceiver
) -> None:
    """The engine's clock reaches the provider through the factory: a subscription asked
    for an hour expires an hour after that clock's now, not the wall's."""
    driver = MicrosoftDriver(endpoints_2031)
    config = ProviderConfig(
        "http://127.0.0.1:9/unused",
        microsoft_graph_url=f"{endpoints_2031.url}v1.0",
        microsoft_login_url=endpoints_2031.tls_url,
        microsoft_ca_file=endpoints_2031.ca_path,
        clock=FixedClock(FIXED_NOW),
    )
    login = driver.login("")
    provider = provider_factory(config)(login.provider, None, login.credentials)
    assert isinstance(provider, MicrosoftProvider)
    try:
        cal = driver.new_calendar("Pushed")
        made = provider.subscribe(
            cal, address=receiver.url, secret="s3cret", lifetime=timedelta(hours=1)
        )
        held = _subscriptions(driver)[made.remote_id]
        renewed = provider.renew(made, lifetime=timedelta(hours=2))
        provider.unsubscribe(renewed)
        # Seven days asked for: Graph's most for Outlook events.
        longest = provider.subscribe(
            cal, address=receiver.url, secret="s3cret", lifetime=timedelta(days=7)
        )
        provider.unsubscribe(longest)
    finally:
        provider.close()
        driver.close()
    assert made.expires_at == FIXED_NOW + timedelta(hours=1)
    assert held["expiration"].startswith("2031-01-01T01:00:00")
    assert renewed.expires_at == FIXED_NOW + timedelta(hours=2)
    assert longest.expires_at == FIXED_NOW + timedelta(minutes=4200)


def test_a_subscription_whose_address_does_not_validate_is_refused(
    driver: MicrosoftDriver, provider: MicrosoftProvider, receiver: PushReceiver
) -> None:
    receiver.validation = "wrong"
    with pytest.raises(ProviderError) as refused:
        provider.subscribe(
            driver.default_calendar, address=receiver.url, secret="s", lifetime=timedelta(hours=1)
        )
    assert refused.value.kind is ErrorKind.INVALID
    assert _subscriptions(driver) == {} or all(
        s["notification_url"] != receiver.url for s in _subscriptions(driver).values()
    )


def test_the_parser_reads_every_lifecycle_notice() -> None:
    body = {
        "value": [
            {
                "subscriptionId": "a",
                "lifecycleEvent": "reauthorizationRequired",
                "clientState": "k",
            },
            {"subscriptionId": "b", "lifecycleEvent": "subscriptionRemoved", "clientState": "k"},
            {"subscriptionId": "c", "lifecycleEvent": "missed"},
            {"subscriptionId": "d", "changeType": "deleted", "clientState": "other"},
        ]
    }
    notices = parse_notification({}, json.dumps(body).encode())
    assert isinstance(notices, list)
    assert [(n.remote_id, n.kind, n.secret) for n in notices] == [
        ("a", NoticeKind.REAUTHORIZE, "k"),
        ("b", NoticeKind.REMOVED, "k"),
        ("c", NoticeKind.MISSED, None),
        ("d", NoticeKind.CHANGED, "other"),
    ]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b"not json", "not JSON"),
        (b"[]", "not a Graph notification"),
        (b'{"value": {}}', "not a Graph notification"),
        (b'{"value": [{}]}', "not a Graph notification"),
        (b'{"value": [{"subscriptionId": ""}]}', "empty subscriptionId"),
        (b'{"value": [{"subscriptionId": "x"}]}', "neither changeType nor lifecycleEvent"),
        (b'{"value": [{"subscriptionId": "x", "changeType": "exploded"}]}', "unknown changeType"),
    ],
)
def test_the_parser_refuses_what_is_not_graphs(body: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_notification({}, body)
    with pytest.raises(ValueError, match="empty validationToken"):
        parse_notification({"validationToken": ""}, b"")
