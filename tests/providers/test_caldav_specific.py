"""What only CalDAV does: discovery, iCloud's quirks, series in one resource, blocks by href and
ETag, the block's iCalendar text, and its failures; against real Radicale and Xandikos."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from calsync_server.providers.caldav import CalDAVProvider
from calsync_server.providers.credentials import CalDAVPassword
from calsync_server.providers.model import (
    BlockAction,
    BlockContent,
    BlockOp,
    ErrorKind,
    EventTime,
    ProviderError,
)
from calsync_server.providers.registry import ProviderConfig, caldav_provider
from shared.clock import FixedClock
from tests.providers.contract import WINDOW, Calendar, at, block, digest_of
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer
from tests.support.fault_proxy import FaultProxy


@pytest.fixture
def driver(caldav: CalDAVServer) -> CalDAVDriver:
    return CalDAVDriver(caldav)


@pytest.fixture
def provider(driver: CalDAVDriver) -> Iterator[CalDAVProvider]:
    made = driver.provider()
    yield made
    made.close()


def _requests_during(driver: CalDAVDriver, action: object) -> list[tuple[str, str]]:
    before = len(driver.server.proxy.requests())
    assert callable(action)
    action()
    return driver.server.proxy.requests()[before:]


# -- discovery ---------------------------------------------------------------------------------


def test_discovery_takes_well_known_when_the_root_is_no_dav(driver: CalDAVDriver) -> None:
    calendar_id = driver.new_calendar("Found via well-known")
    principal = "/alice@example.com/" if driver.server.kind == "radicale" else "/alice/"
    driver.server.proxy.state.root_not_dav = principal
    provider = CalDAVProvider(driver.server.proxy.url, driver.server.username, "correct horse")
    try:
        listed = _requests_during(driver, provider.list_calendars)
        names = {c.id: c.name for c in provider.list_calendars()}
    finally:
        provider.close()
    assert names[calendar_id] == "Found via well-known"
    assert listed[0] == ("PROPFIND", "/.well-known/caldav")
    assert ("PROPFIND", "/") not in listed


def test_discovery_from_the_principal_url(driver: CalDAVDriver) -> None:
    calendar_id = driver.new_calendar("Found via principal")
    principal = "/alice@example.com/" if driver.server.kind == "radicale" else "/alice/"
    provider = CalDAVProvider(
        driver.server.proxy.url + principal, driver.server.username, "correct horse"
    )
    try:
        listed = _requests_during(driver, provider.list_calendars)
        calendars = {c.id: c for c in provider.list_calendars()}
    finally:
        provider.close()
    assert calendars[calendar_id].name == "Found via principal"
    assert calendars[calendar_id].writable
    # The URL itself answers current-user-principal: no well-known lookup is needed.
    assert listed[0] == ("PROPFIND", principal)
    assert all(path != "/.well-known/caldav" for _, path in listed)


def test_a_calendar_home_on_another_host_is_where_calendars_are_read_and_written(
    driver: CalDAVDriver,
) -> None:
    """iCloud: caldav.icloud.com names the principal, whose calendar-home-set is on a
    pNN-caldav.icloud.com host; every later request goes there, and the login keeps it."""
    server = driver.server
    partition = FaultProxy(server.upstream)  # the same server, reached by another host
    try:
        if server.kind == "xandikos":
            partition.state.login = (server.username, server.password)
        server.proxy.state.home_elsewhere = partition.url
        path = driver.path_of(driver.new_calendar("On the partition"))
        login = CalDAVPassword(url=server.url, username=server.username, password=server.password)
        with contextlib.closing(CalDAVProvider.from_login(login)) as provider:
            listed = {c.id: c.name for c in provider.list_calendars()}
            calendar_id = partition.url + path
            assert listed[calendar_id] == "On the partition"
            first = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
            op = block(calendar_id, "pnn", provider_block_id=provider.block_id(digest_of("pnn")))
            assert provider.apply([op])[0].ok
            provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)
            kept = provider.credentials_to_store(login)
        assert isinstance(kept, CalDAVPassword)
        assert kept.calendar_home is not None
        assert kept.calendar_home.startswith(partition.url + "/")
        # The sign-in host answered discovery only; the calendars were listed, read and
        # written on the partition host.
        assert {method for method, _ in server.proxy.requests()} == {"PROPFIND"}
        assert {m for m, _ in partition.requests()} == {"PROPFIND", "REPORT", "PUT"}
        [held] = [e for e in driver.events(driver.calendar_url(path)) if e["mark"]]
        assert held["start"] == at(9)
    finally:
        partition.close()


def test_a_kept_calendar_home_skips_discovery_and_a_moved_one_is_found_again(
    driver: CalDAVDriver,
) -> None:
    calendar_id = driver.new_calendar("Found from the kept home")
    server = driver.server
    login = CalDAVPassword(url=server.url, username=server.username, password=server.password)
    with contextlib.closing(CalDAVProvider.from_login(login)) as discovering:
        discovering.list_calendars()
        kept = discovering.credentials_to_store(login)
    assert isinstance(kept, CalDAVPassword)
    assert kept.calendar_home is not None

    with contextlib.closing(CalDAVProvider.from_login(kept)) as provider:
        listed = _requests_during(driver, provider.list_calendars)
        names = {c.id: c.name for c in provider.list_calendars()}
        assert provider.credentials_to_store(kept) is None  # nothing new to keep
    assert names[calendar_id] == "Found from the kept home"
    assert [method for method, _ in listed] == ["PROPFIND"]  # the home's listing, only

    # The account moved (another iCloud partition): the kept home answers 404 and is found
    # again, once; the login to keep says where it is now.
    moved = msgspec.structs.replace(kept, calendar_home=server.proxy.url + "/gone/calendars/")
    with contextlib.closing(CalDAVProvider.from_login(moved)) as provider:
        names = {c.id: c.name for c in provider.list_calendars()}
        again = provider.credentials_to_store(moved)
    assert names[calendar_id] == "Found from the kept home"
    assert isinstance(again, CalDAVPassword)
    assert again.calendar_home == kept.calendar_home


def test_a_refused_password_is_auth_at_once(driver: CalDAVDriver) -> None:
    provider = CalDAVProvider(driver.server.url, driver.server.username, "wrong password")
    try:
        with pytest.raises(ProviderError) as refused:
            provider.list_calendars()
    finally:
        provider.close()
    assert refused.value.kind is ErrorKind.AUTH
    assert provider.stats.retries == 0
    assert provider.stats.requests == 1


# -- reading -----------------------------------------------------------------------------------

SERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//the person's app//EN
BEGIN:VTIMEZONE
TZID:Office time
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:series-1@person.example
DTSTAMP:20270101T000000Z
DTSTART;TZID=Office time:20270201T100000
DTEND;TZID=Office time:20270201T110000
RRULE:FREQ=DAILY;COUNT={count}
EXDATE;TZID=Office time:20270202T100000
RDATE;TZID=Office time:20270210T100000
SUMMARY:Planning
END:VEVENT
BEGIN:VEVENT
UID:series-1@person.example
DTSTAMP:20270101T000000Z
RECURRENCE-ID;TZID=Office time:20270203T100000
DTSTART;TZID=Office time:20270203T150000
DTEND;TZID=Office time:20270203T160000
SUMMARY:Planning (moved)
END:VEVENT
END:VCALENDAR
"""


def _ics(text: str) -> str:
    return text.replace("\n", "\r\n")


def test_a_series_is_expanded_in_the_window(driver: CalDAVDriver, provider: CalDAVProvider) -> None:
    """RRULE, EXDATE, RDATE and a moved occurrence, in a zone only the VTIMEZONE defines; the
    window (from Feb 1, 14 days) cuts nothing here, and a narrower one cuts the RDATE."""
    calendar_id = driver.new_calendar("Series")
    driver.put_ics(calendar_id, "planning.ics", _ics(SERIES.format(count=4)))
    seen = Calendar()
    seen.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
    starts = [
        e.start.to_utc() for e in sorted(seen.events.values(), key=lambda e: e.start.to_utc())
    ]
    # 10:00 at +01:00 is 09:00 UTC; Feb 2 excluded; Feb 3 moved to 15:00 (14:00 UTC); RDATE Feb 10.
    assert starts == [at(9, 0), at(14, 2), at(9, 3), at(9, 9)]
    assert {e.series_id for e in seen.events.values()} == {"planning.ics"}
    moved = seen.only("Planning (moved)")
    # An occurrence's id names the instant it recurs at, so a moved one keeps its id.
    assert moved.id == "planning.ics#20270203T090000Z"
    assert moved.end.to_utc() == at(15, 2)

    narrow = provider.read_changes(calendar_id, cursor=None, window=(at(0), at(0, 5)))
    assert [e.start.to_utc() for e in narrow.events] == [at(9, 0), at(14, 2), at(9, 3)]


def test_a_changed_series_replaces_its_instances_whole(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    calendar_id = driver.new_calendar("Shrinking series")
    driver.put_ics(calendar_id, "planning.ics", _ics(SERIES.format(count=4)))
    seen = Calendar()
    first = seen.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
    assert len(seen.events) == 4
    driver.put_ics(calendar_id, "planning.ics", _ics(SERIES.format(count=1)))
    requests = _requests_during(
        driver,
        lambda: seen.apply(provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)),
    )
    # One sync-collection REPORT brings the changed resource with its data; Xandikos leaves
    # calendar-data out of sync-collection (404 propstat), so one multiget fetches it.
    expected = 1 if driver.server.kind == "radicale" else 2
    assert requests == [("REPORT", driver.path_of(calendar_id))] * expected
    changes = provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)
    assert changes.series_replaced == ("planning.ics",)
    # COUNT=1 leaves Feb 1, the RDATE and the override (an override stands on its own).
    assert sorted(e.start.to_utc() for e in seen.events.values()) == [at(9), at(14, 2), at(9, 9)]

    driver.delete(calendar_id, "planning.ics")
    gone = seen.apply(provider.read_changes(calendar_id, cursor=changes.cursor, window=WINDOW))
    assert gone.removed == ("planning.ics",)
    assert seen.events == {}


def test_sync_collection_listing_the_collection_itself_is_ignored(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    """iCloud lists the calendar collection among the changed members."""
    calendar_id = driver.new_calendar("iCloud-like")
    first = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    driver.server.proxy.state.icloud_sync = True
    event = driver.add(calendar_id, PersonEvent("Dinner", at(19), at(21)))
    changes = provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)
    assert [e.id for e in changes.events] == [event]
    assert changes.series_replaced == (event,)
    assert changes.removed == ()


def test_zones_all_day_and_floating(driver: CalDAVDriver, provider: CalDAVProvider) -> None:
    calendar_id = driver.new_calendar("Times")
    text = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\n"
        "BEGIN:VEVENT\nUID:z1\nDTSTAMP:20270101T000000Z\n"
        "DTSTART;TZID=America/New_York:20270201T090000\nDURATION:PT90M\nSUMMARY:NY\nEND:VEVENT\n"
        "END:VCALENDAR\n"
    )
    driver.put_ics(calendar_id, "ny.ics", _ics(text))
    holiday = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\n"
        "BEGIN:VEVENT\nUID:z2\nDTSTAMP:20270101T000000Z\n"
        "DTSTART;VALUE=DATE:20270205\nSUMMARY:Holiday\nTRANSP:TRANSPARENT\nEND:VEVENT\n"
        "END:VCALENDAR\n"
    )
    driver.put_ics(calendar_id, "holiday.ics", _ics(holiday))
    seen = Calendar()
    seen.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
    ny = seen.only("NY")
    assert ny.start.zone == "America/New_York"
    assert ny.start.to_utc() == at(14)
    assert ny.end.to_utc() == at(15.5)
    day = seen.only("Holiday")
    # No DTEND on an all-day event: it lasts that one day (end exclusive).
    assert (day.start.day, day.end.day) == (date(2027, 2, 5), date(2027, 2, 6))
    assert not day.busy


def test_an_unchanged_calendar_costs_one_small_report(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    calendar_id = driver.new_calendar("Quiet")
    driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
    first = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    requests = _requests_during(
        driver, lambda: provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)
    )
    assert requests == [("REPORT", driver.path_of(calendar_id))]
    again = provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)
    assert again.events == ()
    assert again.removed == ()


# -- blocks ------------------------------------------------------------------------------------


def test_the_block_text_has_exactly_what_calsync_promises(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    calendar_id = driver.new_calendar("Block text")
    digest = digest_of("text")
    op = block(calendar_id, "text", title="Busy", provider_block_id=provider.block_id(digest))
    day = BlockOp(
        BlockAction.CREATE,
        calendar_id,
        block_id=provider.block_id(digest_of("day")),
        content=BlockContent(
            "Busy", EventTime.on(date(2027, 2, 3)), EventTime.on(date(2027, 2, 4)), "all-day,src"
        ),
        digest=digest_of("day"),
    )
    results = provider.apply([op, day])
    assert all(r.ok for r in results), results
    assert provider.block_id(digest) == f"{digest}.ics"

    text, _ = driver.get_ics(calendar_id, f"{digest}.ics")
    lines = text.replace("\r\n", "\n").split("\n")
    for line in (
        f"UID:{digest}@calsync",
        "DTSTART:20270201T090000Z",
        "DTEND:20270201T100000Z",
        "SUMMARY:Busy",
        "CLASS:PRIVATE",
        "TRANSP:OPAQUE",
        "X-CALSYNC-SOURCE:source-text",
    ):
        assert line in lines, f"{line!r} missing from\n{text}"
    for banned in ("ORGANIZER", "ATTENDEE", "BEGIN:VALARM", "TZID", "RRULE"):
        assert banned not in text

    all_day, _ = driver.get_ics(calendar_id, f"{digest_of('day')}.ics")
    assert "DTSTART;VALUE=DATE:20270203" in all_day
    assert "DTEND;VALUE=DATE:20270204" in all_day
    # The mark survives characters iCalendar escapes.
    [found] = [b for b in provider.list_blocks(calendar_id, window=WINDOW) if b.all_day]
    assert found.block_source == "all-day,src"


def test_a_create_that_meets_a_block_reads_and_adopts_it(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    """412 on If-None-Match: * says EXISTS; READ gives the block there, its mark and ETag."""
    calendar_id = driver.new_calendar("Adopt")
    op = block(calendar_id, "adopt", provider_block_id=provider.block_id(digest_of("adopt")))
    other = driver.provider()  # a calsync that crashed before storing what it wrote
    try:
        assert other.apply([op])[0].ok
    finally:
        other.close()
    [exists] = provider.apply([op])
    assert exists.error is not None
    assert exists.error.kind is ErrorKind.EXISTS
    [read] = provider.apply([BlockOp(BlockAction.READ, calendar_id, op.block_id)])
    assert read.block is not None
    _, etag = driver.get_ics(calendar_id, str(op.block_id))
    assert read.block.version == etag
    assert read.block.block_source == "source-adopt"
    assert read.block.start.to_utc() == at(9)
    missing = provider.apply([BlockOp(BlockAction.READ, calendar_id, "nothing.ics")])[0]
    assert missing.error is not None
    assert missing.error.kind is ErrorKind.GONE


def test_versions_are_the_servers_etags_and_writes_echo_for_free(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    calendar_id = driver.new_calendar("Etags")
    first = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    op = block(calendar_id, "etag", provider_block_id=provider.block_id(digest_of("etag")))
    results: list[object] = []
    requests = _requests_during(driver, lambda: results.extend(provider.apply([op])))
    # One PUT: the ETag comes back with it, nothing more is asked.
    assert [m for m, _ in requests] == ["PUT"]
    made = results[0].block  # type: ignore[attr-defined]
    _, etag = driver.get_ics(calendar_id, str(op.block_id))
    assert made.version == etag
    # The write comes back in the feed with the version calsync already holds: an echo.
    [echo] = provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW).events
    assert (echo.id, echo.version, echo.block_source) == (made.id, made.version, "source-etag")

    # The person edits the block: calsync's version is stale, by the server's own ETag.
    driver.put_ics(
        calendar_id,
        str(op.block_id),
        driver.get_ics(calendar_id, str(op.block_id))[0].replace("SUMMARY:Busy", "SUMMARY:Mine"),
    )
    assert op.content is not None
    stale = BlockOp(BlockAction.UPDATE, calendar_id, op.block_id, op.content, version=made.version)
    [refused] = provider.apply([stale])
    assert refused.error is not None
    assert refused.error.kind is ErrorKind.STALE
    delete = BlockOp(BlockAction.DELETE, calendar_id, op.block_id, version=made.version)
    [kept] = provider.apply([delete])
    assert kept.error is not None
    assert kept.error.kind is ErrorKind.STALE
    assert driver.get_ics(calendar_id, str(op.block_id))[0].count("SUMMARY:Mine") == 1


# -- failures ----------------------------------------------------------------------------------


def test_dropped_connections_and_server_errors_are_retried(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    calendar_id = driver.new_calendar("Flaky")
    driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
    provider.list_calendars()
    driver.server.proxy.drop_next()
    driver.server.proxy.fail_next(502)
    changes = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    assert [e.title for e in changes.events] == ["Call"]
    assert provider.stats.retries == 2
    assert "retried after 502" in provider.stats.notes


def test_a_request_the_server_never_answers_times_out_and_is_retried(
    driver: CalDAVDriver,
) -> None:
    calendar_id = driver.new_calendar("Slow")
    driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
    waits: list[float] = []
    provider = CalDAVProvider(
        driver.server.url, driver.server.username, "correct horse", timeout=1, sleep=waits.append
    )
    try:
        driver.server.proxy.stall_next()
        changes = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    finally:
        provider.close()
    assert [e.title for e in changes.events] == ["Call"]
    assert provider.stats.retries == 1
    assert len(waits) == 1
    assert "retried after a connection error" in provider.stats.notes


def test_a_server_that_keeps_failing_is_transient_with_its_retry_after(
    driver: CalDAVDriver,
) -> None:
    calendar_id = driver.new_calendar("Down")
    waits: list[float] = []
    provider = CalDAVProvider(
        driver.server.url, driver.server.username, "correct horse", sleep=waits.append, max_tries=3
    )
    try:
        driver.server.proxy.fail_next(503, times=3, retry_after=7)
        with pytest.raises(ProviderError) as failed:
            provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    finally:
        provider.close()
    assert failed.value.kind is ErrorKind.TRANSIENT
    assert failed.value.retry_after == 7
    assert waits == [7, 7]


def test_an_http_date_retry_after_counts_from_the_factorys_clock(driver: CalDAVDriver) -> None:
    """Retry-After as an HTTP date is a wait from the engine's clock (the factory hands it to
    the provider with the sleep it waits with), whether the library raised it (429) or the
    answer came back (502); python-caldav's own parse counts from the wall clock."""
    calendar_id = driver.new_calendar("Busy server")
    driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
    waits: list[float] = []
    config = ProviderConfig(
        "http://127.0.0.1:9/unused",
        clock=FixedClock(datetime(2031, 1, 1, tzinfo=UTC)),
        sleep=waits.append,
    )
    provider = caldav_provider(driver.login(calendar_id).credentials, config)
    try:
        provider.list_calendars()
        driver.server.proxy.fail_next(429, retry_after="Wed, 01 Jan 2031 00:00:07 GMT")
        driver.server.proxy.fail_next(502, retry_after="Wed, 01 Jan 2031 00:00:03 GMT")
        changes = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    finally:
        provider.close()
    assert [e.title for e in changes.events] == ["Call"]
    assert waits == [7.0, 3.0]


def test_a_login_refused_later_is_auth_without_retries(driver: CalDAVDriver) -> None:
    provider = driver.provider()
    try:
        calendar_id = driver.new_calendar("Later")
        provider.list_calendars()
        driver.refuse_login()
        with pytest.raises(ProviderError) as refused:
            provider.read_changes(calendar_id, cursor=None, window=WINDOW)
        assert refused.value.kind is ErrorKind.AUTH
        assert provider.stats.retries == 0
    finally:
        provider.close()


def test_blocks_in_a_calendar_that_is_gone(driver: CalDAVDriver, provider: CalDAVProvider) -> None:
    calendar_id = driver.new_calendar("Vanishing")
    driver.http.request("DELETE", driver.path_of(calendar_id))
    with pytest.raises(ProviderError) as gone:
        provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    assert gone.value.kind is ErrorKind.GONE


def test_window_is_respected_for_first_reads(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    calendar_id = driver.new_calendar("Window")
    driver.add(calendar_id, PersonEvent("Inside", at(9), at(10)))
    driver.add(calendar_id, PersonEvent("Before", at(9, -3), at(10, -3)))
    later = WINDOW[1] + timedelta(days=2)
    driver.add(calendar_id, PersonEvent("After", later, later + timedelta(hours=1)))
    changes = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
    assert [e.title for e in changes.events] == ["Inside"]
    assert changes.full


BERLIN = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:x
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
END:VTIMEZONE
END:VCALENDAR
"""


def test_calendars_say_their_colour_zone_and_kind(
    driver: CalDAVDriver, provider: CalDAVProvider
) -> None:
    calendar_id = driver.new_calendar("Coloured")
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
        'xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>'
        "<A:calendar-color>#ff8800ff</A:calendar-color>"
        f"<C:calendar-timezone>{BERLIN}</C:calendar-timezone>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    reply = driver.http.request(
        "PROPPATCH",
        driver.path_of(calendar_id),
        content=body,
        headers={"Content-Type": "application/xml"},
    )
    assert reply.status_code == 207, reply.text
    tasks = driver.server.home_path + "tasks/"
    made = driver.http.request(
        "MKCALENDAR",
        tasks,
        content=(
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            '<C:supported-calendar-component-set><C:comp name="VTODO"/>'
            "</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"
        ),
        headers={"Content-Type": "application/xml"},
    )
    assert made.status_code in (201, 405), made.text  # 405: made by an earlier test
    listed = {c.id: c for c in provider.list_calendars()}
    assert listed[calendar_id].color == "#FF8800"
    assert listed[calendar_id].time_zone == "Europe/Berlin"
    # A task list is no calendar of events.
    assert driver.calendar_url(tasks) not in listed
