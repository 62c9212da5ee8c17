"""CalDAV keeps the provider contract: calsync's CalDAV provider against real Radicale and
Xandikos servers started on free ports, with the fault proxy in front; and again with the
proxy making each a server without sync-collection, which calsync polls by its ctag."""

from __future__ import annotations

import pytest

from calsync_server.providers.caldav import CalDAVProvider
from calsync_server.providers.model import ErrorKind, ProviderError
from tests.providers.contract import WINDOW, Calendar, ProviderContract, at
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer


@pytest.fixture
def driver(caldav: CalDAVServer) -> CalDAVDriver:
    return CalDAVDriver(caldav)


class TestCalDAVContract(ProviderContract):
    pass


class TestCalDAVContractWithoutSyncCollection(ProviderContract):
    """No sync-token in any answer and the sync-collection REPORT refused (501): every change
    and delete is still read, from the ctag and the window's ETags."""

    @pytest.fixture
    def driver(self, caldav: CalDAVServer) -> CalDAVDriver:
        made = CalDAVDriver(caldav)
        caldav.proxy.without_sync_collection(501)
        return made

    def test_an_expired_cursor_says_so_and_a_full_read_follows(self, driver: CalDAVDriver) -> None:
        """The cursor is calsync's own snapshot, which no server can expire: one calsync cannot
        read back (a damaged row) says CURSOR_EXPIRED, and a full read follows."""
        calendar_id = driver.new_calendar("Expiry")
        driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
        provider: CalDAVProvider = driver.provider()
        try:
            first = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
            assert first.cursor is not None
            with pytest.raises(ProviderError) as refused:
                provider.read_changes(calendar_id, cursor=first.cursor[:-3], window=WINDOW)
            assert refused.value.kind is ErrorKind.CURSOR_EXPIRED
            again = Calendar()
            again.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
        finally:
            provider.close()
        assert again.only("Call").start.to_utc() == at(9)
