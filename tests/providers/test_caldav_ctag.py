"""A CalDAV server without sync-collection, by the fault proxy in front of a real Radicale or
Xandikos: calsync polls it by its ctag, one small PROPFIND when nothing changed, and on a
change reads the window and tells changed from removed resources by their ETags."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from calsync_server.providers.caldav import CalDAVProvider
from tests.providers.contract import WINDOW, Calendar, at, block, digest_of
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer


@pytest.fixture
def driver(caldav: CalDAVServer) -> CalDAVDriver:
    return CalDAVDriver(caldav)


@pytest.fixture
def provider(driver: CalDAVDriver) -> Iterator[CalDAVProvider]:
    made = driver.provider()
    yield made
    made.close()


def _methods_since(driver: CalDAVDriver, mark: int) -> list[str]:
    return [method for method, _ in driver.server.proxy.requests()[mark:]]


@pytest.mark.parametrize("refusal", [501, 403, 415])
def test_a_quiet_poll_costs_one_propfind_and_a_change_one_query_more(
    driver: CalDAVDriver, provider: CalDAVProvider, refusal: int
) -> None:
    driver.server.proxy.without_sync_collection(refusal)
    calendar_id = driver.new_calendar("No sync-collection")
    kept = driver.add(calendar_id, PersonEvent("Standup", at(9), at(9.5)))
    doomed = driver.add(calendar_id, PersonEvent("Dentist", at(11), at(12)))
    seen = Calendar()
    first = seen.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
    assert first.full
    assert len(seen.events) == 2

    mark = len(driver.server.proxy.requests())
    quiet = provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)
    assert _methods_since(driver, mark) == ["PROPFIND"]
    assert (quiet.events, quiet.removed, quiet.cursor) == ((), (), first.cursor)

    driver.move(calendar_id, kept, at(10), at(10.5))
    driver.delete(calendar_id, doomed)
    added = driver.add(calendar_id, PersonEvent("Review", at(14), at(15)))
    mark = len(driver.server.proxy.requests())
    changed = seen.apply(provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW))
    # The ctag, then the window's query: no sync-collection is tried (it would be a REPORT more).
    assert _methods_since(driver, mark) == ["PROPFIND", "REPORT"]
    assert not changed.full
    # Only what changed comes: the moved event and the new one, and the removed resource.
    assert sorted(e.id for e in changed.events) == sorted([kept, added])
    assert changed.removed == (doomed,)
    assert sorted(changed.series_replaced) == sorted([kept, added, doomed])
    assert seen.only("Standup").start.to_utc() == at(10)
    assert seen.only("Review").start.to_utc() == at(14)
    assert not seen.titled("Dentist")


def test_a_server_that_gives_a_token_and_then_refuses_to_sync_is_polled_by_ctag(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    """A sync-token from PROPFIND, then the REPORT refused (403 DAV:supported-report): that
    poll reads the window whole, and from then on the calendar is polled by its ctag."""
    calendar_id = driver.new_calendar("Token, no sync")
    driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
    first = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    assert first.cursor is not None
    assert not first.cursor.startswith("calsync-ctag:")  # a real sync-token

    driver.server.proxy.without_sync_collection(403, token=True)
    driver.add(calendar_id, PersonEvent("Lunch", at(12), at(13)))
    seen = Calendar()
    fallback = seen.apply(provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW))
    assert fallback.full
    assert sorted(e.title for e in seen.events.values()) == ["Call", "Lunch"]
    assert "the server refuses sync-collection: polled by its ctag" in provider.stats.notes

    mark = len(driver.server.proxy.requests())
    quiet = provider.read_changes(calendar_id, cursor=fallback.cursor, window=WINDOW)
    assert _methods_since(driver, mark) == ["PROPFIND"]
    assert quiet.events == ()


def test_calsyncs_own_writes_come_back_in_the_same_query(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    """A block calsync wrote moves the ctag: the next poll brings it with the ETag the PUT
    returned (an echo, costing nothing more than the query it came in)."""
    driver.server.proxy.without_sync_collection()
    calendar_id = driver.new_calendar("Echoes by ctag")
    driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
    first = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    op = block(calendar_id, "echo", provider_block_id=provider.block_id(digest_of("echo")))
    [made] = provider.apply([op])
    assert made.block is not None
    mark = len(driver.server.proxy.requests())
    changes = provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)
    assert _methods_since(driver, mark) == ["PROPFIND", "REPORT"]
    assert not changes.full
    [echo] = changes.events  # the person's unchanged Call is not sent again
    assert (echo.id, echo.version, echo.block_source) == (
        made.block.id,
        made.block.version,
        "source-echo",
    )
