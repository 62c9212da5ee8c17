"""CalDAV keeps the provider contract: calsync's CalDAV provider against real Radicale and
Xandikos servers started on free ports, with the fault proxy in front."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.contract import ProviderContract
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer, Kind, caldav_server


@pytest.fixture(scope="module", params=["radicale", "xandikos"])
def caldav(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CalDAVServer]:
    kind: Kind = request.param
    root: Path = tmp_path_factory.mktemp(kind)
    with caldav_server(kind, root) as server:
        yield server


@pytest.fixture
def driver(caldav: CalDAVServer) -> CalDAVDriver:
    return CalDAVDriver(caldav)


class TestCalDAVContract(ProviderContract):
    pass
