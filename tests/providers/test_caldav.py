"""CalDAV keeps the provider contract: calsync's CalDAV provider against real Radicale and
Xandikos servers started on free ports, with the fault proxy in front."""

from __future__ import annotations

import pytest

from tests.providers.contract import ProviderContract
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer


@pytest.fixture
def driver(caldav: CalDAVServer) -> CalDAVDriver:
    return CalDAVDriver(caldav)


class TestCalDAVContract(ProviderContract):
    pass
