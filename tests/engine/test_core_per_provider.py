"""The engine's core behaviours once per driver (Google, Microsoft, Radicale, Xandikos): a mixed
user with two calendars made and edited through the driver and a Google one, every outcome read
back from the providers' own calendars. test_sync.py holds the Google-only details (fields of a
block, DST, read-only, crashes); a new provider gets these by adding one driver to DRIVERS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.providers.model import ErrorKind
from shared.domain import SyncStatus
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.connect import blocks, connect
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.per_provider import (
    DRIVERS,
    driver_in,
    hands_fixture,
    next_dst_change,
)
from tests.support.world import Cal, World, at


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what differs here is the provider, and the engine's SQL is the same one
    test_sync.py runs on PostgreSQL too (the mixed user end to end runs on both)."""
    return f"sqlite:///{tmp_path / 'calsync.db'}"


hands = hands_fixture(DRIVERS)


@pytest.fixture
def driver(hands: Callable[[str], Driver], unique: str, world: World) -> Iterator[Driver]:
    yield from driver_in(world, hands(unique))


@pytest.fixture
def google(emulator: RunningEmulator, unique: str) -> Iterator[GoogleDriver]:
    """The person's Google hands, for the user's other provider."""
    made = GoogleDriver(emulator, f"{unique}g")
    yield made
    made.close()


def instant(hours: float, days: int = 1) -> datetime:
    return datetime.fromisoformat(at(hours, days).replace("Z", "+00:00"))


def busy(
    start: float, end: float, days: int = 1, title: str = "Busy"
) -> tuple[str, datetime, datetime]:
    return (title, instant(start, days), instant(end, days))


Setup = tuple[Cal, Cal, Cal]


def mixed_user(world: World, driver: Driver, google: GoogleDriver, **settings: object) -> Setup:
    """Personal and Family through the driver, Work in Google; all synced, both ways."""
    personal, family = connect(world, driver, "Personal", "Family")
    (work,) = connect(world, google, "Work")
    world.configure(personal, family, work)
    if settings:
        world.configure(personal, **settings)
    return personal, family, work


def test_initial_sync_gives_one_exact_block_per_event_in_every_other_calendar(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    driver.add(personal.provider_id, PersonEvent("Dentist", instant(14), instant(15)))
    google.add(work.provider_id, PersonEvent("Board meeting", instant(9), instant(10)))

    world.sync_all(personal, family, work)
    world.sync_all(personal, family, work)  # nothing more to do: no second copy anywhere

    assert blocks(driver, personal) == [busy(9, 10)]
    assert blocks(driver, family) == [busy(9, 10), busy(14, 15)]
    assert blocks(google, work) == [busy(14, 15)]
    assert len(world.rows()) == 4


def test_a_moved_and_retitled_event_moves_and_retitles_its_blocks(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google, busy_title="title")
    event = driver.add(personal.provider_id, PersonEvent("Planning", instant(9), instant(10)))
    world.sync_all(personal, family, work)
    assert blocks(google, work) == [busy(9, 10, title="Busy - Planning")]

    driver.move(personal.provider_id, event, instant(11), instant(12))
    driver.retitle(personal.provider_id, event, "Planning v2")
    result = world.sync(personal)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    for target, hands in ((family, driver), (work, google)):
        assert blocks(hands, target) == [busy(11, 12, title="Busy - Planning v2")]
    assert len(world.rows()) == 2


def test_a_deleted_event_removes_its_blocks(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    event = driver.add(personal.provider_id, PersonEvent("Lunch", instant(12), instant(13)))
    google.add(work.provider_id, PersonEvent("Standup", instant(9), instant(9.5)))
    world.sync_all(personal, family, work)
    assert blocks(driver, family) == [busy(9, 9.5), busy(12, 13)]

    driver.delete(personal.provider_id, event)
    world.sync(personal)

    assert blocks(driver, family) == [busy(9, 9.5)]
    assert blocks(google, work) == []
    assert blocks(driver, personal) == [busy(9, 9.5)]


def test_a_recurring_series_with_one_occurrence_cancelled_and_one_moved(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    series = driver.add(
        personal.provider_id,
        PersonEvent("Daily", instant(8), instant(8.5), recurrence="FREQ=DAILY;COUNT=4"),
    )
    world.sync_all(personal, family, work)
    four = [busy(8, 8.5, days=d) for d in (1, 2, 3, 4)]
    assert blocks(driver, family) == four
    assert blocks(google, work) == four

    driver.cancel_occurrence(personal.provider_id, series, instant(8, days=2))
    driver.move_occurrence(
        personal.provider_id, series, instant(8, days=3), instant(10, days=3), instant(11, days=3)
    )
    world.sync(personal)

    expected = [busy(8, 8.5, days=1), busy(10, 11, days=3), busy(8, 8.5, days=4)]
    assert blocks(driver, family) == expected
    assert blocks(google, work) == expected

    driver.delete(personal.provider_id, series)
    world.sync(personal)
    assert blocks(driver, family) == []
    assert blocks(google, work) == []


def test_a_zoned_daily_series_keeps_its_wall_clock_time_across_a_dst_change(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    change = next_dst_change(instant(0, days=0).date())
    # The change may lie past the default 90 days: widen the horizon to reach it.
    world.engine.settings = msgspec.structs.replace(world.settings, horizon_days=400)
    personal, family, work = mixed_user(world, driver, google)
    first = datetime.combine(change - timedelta(days=2), time(9), tzinfo=berlin)
    driver.add(
        personal.provider_id,
        PersonEvent("Standup", first, first + timedelta(hours=1), recurrence="FREQ=DAILY;COUNT=4"),
    )

    world.sync_all(personal, family, work)

    # 09:00 in Berlin each day: one hour earlier or later in UTC from the change on.
    expected = [
        (
            "Busy",
            (first + timedelta(days=d)).astimezone(UTC),
            (first + timedelta(days=d, hours=1)).astimezone(UTC),
        )
        for d in range(4)
    ]
    assert len({start.hour for _, start, _ in expected}) == 2
    assert blocks(driver, family) == expected
    assert blocks(google, work) == expected


def test_an_all_day_event_blocks_only_while_include_all_day_is_on(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    day = instant(0, days=3).date()
    driver.add(personal.provider_id, PersonEvent("Conference", day, day + timedelta(days=2)))
    world.sync_all(personal, family, work)
    assert blocks(driver, family) == []
    assert blocks(google, work) == []

    world.configure(personal, include_all_day=True)
    world.sync(personal, full=True)
    all_day: list[tuple[str, date | datetime, date | datetime]] = [
        ("Busy", day, day + timedelta(days=2))
    ]
    assert blocks(driver, family) == all_day
    assert blocks(google, work) == all_day

    world.configure(personal, include_all_day=False)
    world.sync(personal, full=True)
    assert blocks(driver, family) == []
    assert blocks(google, work) == []


def test_a_free_event_and_a_declined_invitation_give_no_block(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    driver.add(personal.provider_id, PersonEvent("Focus?", instant(9), instant(10), free=True))
    driver.add(
        personal.provider_id, PersonEvent("Offsite", instant(11), instant(12), declined=True)
    )
    driver.add(personal.provider_id, PersonEvent("Review", instant(13), instant(14)))

    world.sync_all(personal, family, work)

    assert blocks(driver, family) == [busy(13, 14)]
    assert blocks(google, work) == [busy(13, 14)]


def test_a_block_deleted_by_hand_stays_gone_until_its_source_changes(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    event = driver.add(personal.provider_id, PersonEvent("Lunch", instant(12), instant(13)))
    world.sync_all(personal, family, work)
    [block] = [e for e in driver.events(family.provider_id) if e["mark"] is not None]

    driver.delete(family.provider_id, str(block["id"]))
    world.sync(family)
    world.sync(personal, full=True)
    assert blocks(driver, family) == []
    assert blocks(google, work) == [busy(12, 13)]

    driver.move(personal.provider_id, event, instant(13), instant(14))
    world.sync(personal)
    assert blocks(driver, family) == [busy(13, 14)]
    assert blocks(google, work) == [busy(13, 14)]


def test_a_block_moved_by_hand_before_calsync_read_it_is_not_overwritten(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    """domain.md: a block changed in a way calsync did not write is left alone. The person
    moves a block, and its source moves before calsync has read the target: the update is
    conditional on the version calsync wrote, so the hand edit stands, and the target's own
    sync then finds it and keeps it."""
    personal, family, work = mixed_user(world, driver, google)
    event = driver.add(personal.provider_id, PersonEvent("Lunch", instant(12), instant(13)))
    world.sync_all(personal, family, work)
    [block] = [e for e in driver.events(family.provider_id) if e["mark"] is not None]

    driver.move(family.provider_id, str(block["id"]), instant(15), instant(16))
    driver.move(personal.provider_id, event, instant(13), instant(14))
    moved = world.sync(personal)

    assert moved.log.status == SyncStatus.SUCCESS, moved.log.error
    assert blocks(driver, family) == [busy(15, 16)]
    assert blocks(google, work) == [busy(13, 14)]
    noticed = world.sync(family)
    assert "preserved 1 user modification" in noticed.log.notes
    world.sync(personal, full=True)
    assert blocks(driver, family) == [busy(15, 16)]
    assert blocks(google, work) == [busy(13, 14)]


def test_an_expired_cursor_runs_a_full_sync_without_a_duplicate(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    driver.add(personal.provider_id, PersonEvent("Before", instant(9), instant(10)))
    world.sync_all(personal, family, work)
    driver.expire_cursor(personal.provider_id)
    driver.add(personal.provider_id, PersonEvent("After", instant(11), instant(12)))

    result = world.sync(personal)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert "token expired: full sync" in result.log.notes
    for target, hands in ((family, driver), (work, google)):
        assert blocks(hands, target) == [busy(9, 10), busy(11, 12)]
    assert len(world.rows()) == 4
    # The fresh cursor works: the next change is read incrementally.
    assert "token expired: full sync" not in world.sync(personal).log.notes


def test_a_burst_of_transient_faults_is_retried_then_converges(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    world.sync_all(personal, family, work)

    # A short burst: retried inside the sync.
    driver.add(personal.provider_id, PersonEvent("One", instant(9), instant(10)))
    driver.fail_next(ErrorKind.TRANSIENT, times=2)
    result = world.sync(personal)
    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert result.log.retries >= 2
    assert blocks(driver, family) == [busy(9, 10)]

    # A burst outlasting the retries: the sync fails, nothing is lost, the next one converges.
    driver.add(personal.provider_id, PersonEvent("Two", instant(11), instant(12)))
    driver.fail_next(ErrorKind.TRANSIENT, times=4)
    failed = world.sync(personal)
    assert failed.log.status != SyncStatus.SUCCESS
    world.sync_all(personal, family, work)

    for target, hands in ((family, driver), (work, google)):
        assert blocks(hands, target) == [busy(9, 10), busy(11, 12)]
    assert len(world.rows()) == 4
