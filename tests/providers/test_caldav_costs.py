"""What reading a CalDAV calendar costs in requests, counted by the proxy in front of a real
server: a change is one sync-collection REPORT (Radicale; Xandikos adds a multiget, as it sends
no calendar data in the REPORT), not a discovery of the account on top."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.providers.contract import WINDOW, at
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, Kind, caldav_server


@pytest.fixture(scope="module", params=["radicale", "xandikos"])
def driver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CalDAVDriver]:
    kind: Kind = request.param
    with caldav_server(kind, tmp_path_factory.mktemp(kind)) as server:
        yield CalDAVDriver(server)


def test_a_change_without_attendees_costs_no_discovery(driver: CalDAVDriver) -> None:
    """The owner's addresses (discovery: three PROPFINDs) matter only to an invitation."""
    calendar_id = driver.new_calendar("Changes")
    driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
    first = driver.provider()
    try:
        cursor = first.read_changes(calendar_id, cursor=None, window=WINDOW).cursor
    finally:
        first.close()
    driver.add(calendar_id, PersonEvent("Review", at(14), at(15)))
    # A new provider, as each sync has: nothing discovered yet.
    provider = driver.provider()
    driver.server.proxy.state.log.clear()
    try:
        changes = provider.read_changes(calendar_id, cursor=cursor, window=WINDOW)
    finally:
        provider.close()
    assert [e.title for e in changes.events] == ["Review"]
    methods = [method for method, _path in driver.server.proxy.requests()]
    assert "PROPFIND" not in methods
    assert methods.count("REPORT") == (1 if driver.server.kind == "radicale" else 2)
