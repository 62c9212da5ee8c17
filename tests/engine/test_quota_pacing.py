"""Quota pacing: calsync stays under a provider's quota by itself. With the emulator's quota on
(scaled down so it is met within seconds, calsync's settings scaled the same way), a first sync
that writes hundreds of blocks gets not one rate-limit answer, and every block arrives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import RunningEmulator, run_emulator
from calsync_server.sync.engine import SyncEngine
from shared.domain import SyncStatus
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.connect import blocks, connect
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.microsoft import MicrosoftDriver
from tests.support.drivers.per_provider import driver_in, driver_maker
from tests.support.world import FAST_RETRY, World

EVENTS = 400
# The emulator's quota and calsync's: 100 calls in any 0.5 s (Google's 600 a minute and Graph's
# 10,000 in 10 minutes, shrunk): a first sync of EVENTS blocks unpaced goes faster than that.
CALLS = 100
WINDOW_S = 0.5


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'calsync.db'}"


@pytest.fixture(scope="module")
def quota_emulator() -> Iterator[RunningEmulator]:
    """A Google emulator of this module's own: its quota is switched on and off here."""
    with run_emulator(EmulatorConfig()) as running:
        yield running


@pytest.fixture(scope="module", params=["google", "microsoft"])
def hands(
    request: pytest.FixtureRequest,
    quota_emulator: RunningEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], Driver]]:
    with driver_maker(request.param, quota_emulator, tmp_path_factory.mktemp) as make:
        yield make


@pytest.fixture
def world(quota_emulator: RunningEmulator, database_url: str, tmp_path: Path) -> Iterator[World]:
    built = World(quota_emulator, database_url, tmp_path / "home")
    yield built
    built.close()


@pytest.fixture
def driver(hands: Callable[[str], Driver], unique: str, world: World) -> Iterator[Driver]:
    yield from driver_in(world, hands(unique))


def quota_on(driver: Driver) -> None:
    """The provider's quota, scaled down, from now on (what the person did before is not
    counted: the emulator's count starts again)."""
    if isinstance(driver, GoogleDriver):
        body = {"per_minute": CALLS, "window_s": WINDOW_S}
        answer = driver.admin.put("/emulator/quota", json=body)
    else:
        assert isinstance(driver, MicrosoftDriver)
        body = {"enabled": True, "requests_per_window": CALLS, "window_s": WINDOW_S}
        answer = driver.admin.put("/emulator/throttling", json=body)
    assert answer.status_code == 200, answer.text


def quota_off(driver: Driver) -> None:
    if isinstance(driver, GoogleDriver):
        driver.admin.put("/emulator/quota", json={"per_minute": None})


def refused(driver: Driver) -> int:
    """How many calls the provider refused for its quota (403 rateLimitExceeded, 429)."""
    if isinstance(driver, GoogleDriver):
        return int(driver.admin.get("/emulator/quota").json()["rejected"])
    assert isinstance(driver, MicrosoftDriver)
    return int(driver.admin.get("/emulator/throttling").json()["rejected"])


def paced_engine(world: World, driver: Driver) -> SyncEngine:
    """calsync with its quotas scaled as the emulator's: CALLS in WINDOW_S."""
    if isinstance(driver, GoogleDriver):
        scaled = {"google_calls_per_minute": CALLS, "quota_minute_seconds": WINDOW_S}
    else:
        scaled = {"microsoft_calls_per_10_minutes": CALLS, "quota_minute_seconds": WINDOW_S / 10}
    world.settings = msgspec.structs.replace(world.settings, quota_pacing="on", **scaled)
    return SyncEngine(world.db, world.settings, vault=world.vault, retry=FAST_RETRY)


def test_a_first_sync_of_many_blocks_meets_no_rate_limit(world: World, driver: Driver) -> None:
    work, mirror = connect(world, driver, "Work", "Mirror")
    day = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    for n in range(EVENTS):
        start = day + timedelta(days=1 + n // 20, minutes=30 * (n % 20))
        driver.add(
            work.provider_id, PersonEvent(f"Meeting {n}", start, start + timedelta(minutes=20))
        )
    world.configure(work, mirror, role="both")
    engine = paced_engine(world, driver)
    quota_on(driver)
    try:
        results = [engine.sync_calendar(cal.id) for cal in (work, mirror, work, mirror)]
        assert refused(driver) == 0
    finally:
        quota_off(driver)
    assert [r.log.status for r in results] == [SyncStatus.SUCCESS] * 4
    assert [r.log.retries for r in results] == [0] * 4
    assert len(blocks(driver, mirror)) == EVENTS
    assert blocks(driver, work) == []
