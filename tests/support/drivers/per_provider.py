"""Running one engine test once per provider: drivers made per module (a Graph emulator or a
CalDAV server started once), the engine pointed at Graph as a deployment is, and each driver's
leftovers (faults, a refused login) cleared after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import msgspec
import pytest

from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from calsync_server.sync.engine import SyncEngine
from tests.support.drivers.base import Driver
from tests.support.drivers.caldav import CalDAVDriver, caldav_server
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.microsoft import GraphEndpoints, MicrosoftDriver
from tests.support.world import FAST_RETRY, World

# Every driver; a module that needs fewer names its own list.
DRIVERS = ["google", "microsoft", "caldav-radicale", "caldav-xandikos"]


@contextmanager
def driver_maker(
    name: str, emulator: RunningEmulator, scratch: Callable[[str], Path]
) -> Iterator[Callable[[str], Driver]]:
    """A maker of drivers (by a tag unique to the test) for the provider ``name``."""
    if name == "google":
        yield lambda tag: GoogleDriver(emulator, tag)
        return
    if name == "microsoft":
        with run_graph_emulator(GraphEmulatorConfig()) as running:
            endpoints = GraphEndpoints(running.url, running.tls_url, str(running.ca_path))
            yield lambda _tag: MicrosoftDriver(endpoints)
        return
    kind = name.removeprefix("caldav-")
    with caldav_server(kind, scratch(kind)) as server:  # type: ignore[arg-type]
        yield lambda _tag: CalDAVDriver(server)


def driver_in(world: World, made: Driver) -> Iterator[Driver]:
    """The driver for one test: a Microsoft one points the world's engine at its Graph (the
    settings, as a deployment would), and every driver is cleaned up after the test."""
    if isinstance(made, MicrosoftDriver):
        endpoints = made.endpoints
        world.settings = msgspec.structs.replace(
            world.settings,
            microsoft_graph_url=f"{endpoints.url}v1.0",
            microsoft_login_url=endpoints.tls_url,
            microsoft_ca_file=endpoints.ca_path,
        )
        world.engine = SyncEngine(world.db, world.settings, vault=world.vault, retry=FAST_RETRY)
    yield made
    if isinstance(made, GoogleDriver):
        made.close()  # its faults, if any are left, must not reach the next test
    elif isinstance(made, MicrosoftDriver):
        made.admin.delete("/emulator/faults")
        made.close()
    elif isinstance(made, CalDAVDriver):
        made.server.reset()


def next_dst_change(today: date) -> date:
    """The next last Sunday of March or October at least three days away (the EU's change)."""
    found = []
    for year in (today.year, today.year + 1):
        for month in (3, 10):
            last = date(year, month, 31)
            while last.weekday() != 6:
                last -= timedelta(days=1)
            if last > today + timedelta(days=2):
                found.append(last)
    return min(found)


def hands_fixture(drivers: Sequence[str]) -> Callable[..., Iterator[Callable[[str], Driver]]]:
    """A module-scoped `hands` fixture over these drivers: a maker of drivers for one provider,
    whose Graph emulator or CalDAV server is started once per module."""

    @pytest.fixture(scope="module", params=list(drivers))
    def hands(
        request: pytest.FixtureRequest,
        emulator: RunningEmulator,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[Callable[[str], Driver]]:
        with driver_maker(request.param, emulator, tmp_path_factory.mktemp) as make:
            yield make

    return hands
