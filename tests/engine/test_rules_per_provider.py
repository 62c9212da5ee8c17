"""The rules a user chooses (issue 18), once per driver (Google, Microsoft, Radicale, Xandikos):
title filters, tentative, already invited, working hours across a DST change and merged blocks,
every outcome read back from the providers' own calendars. The planner's properties hold the
rules' combinations; these show that each reaches every provider as described."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

from shared.domain import SyncStatus
from tests.engine import test_core_per_provider as core
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.connect import blocks
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.per_provider import next_dst_change
from tests.support.world import World

BERLIN = ZoneInfo("Europe/Berlin")
# The core suite's fixtures: a world per driver, and the person's Google hands beside it.
database_url, hands, driver, google = core.database_url, core.hands, core.driver, core.google
busy, instant, mixed_user = core.busy, core.instant, core.mixed_user


def test_title_filters_and_tentative_invitations_of_a_source(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    driver.add(personal.provider_id, PersonEvent("Team lunch", instant(12), instant(13)))
    driver.add(personal.provider_id, PersonEvent("Maybe", instant(14), instant(15), tentative=True))
    driver.add(personal.provider_id, PersonEvent("Board", instant(9), instant(10)))
    world.sync_all(personal, family, work)
    everything = [busy(9, 10), busy(12, 13), busy(14, 15)]
    assert blocks(google, work) == everything

    world.configure(personal, title_exclude=["lunch"], block_tentative=False)
    result = world.sync(personal, full=True)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert blocks(driver, family) == [busy(9, 10)]
    assert blocks(google, work) == [busy(9, 10)]
    assert "1 event left out by title filters" in result.log.notes
    assert "1 event tentative or unanswered, left out" in result.log.notes

    world.configure(personal, title_exclude=[], title_include=["/^(board|maybe)$/"])
    world.configure(personal, block_tentative=True)
    world.sync(personal, full=True)
    assert blocks(google, work) == [busy(9, 10), busy(14, 15)]


def test_no_block_where_the_target_account_is_already_invited(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    invited = driver.login(family.provider_id).email
    google.add(
        work.provider_id,
        PersonEvent("Offsite", instant(9), instant(10), attendees=(invited, "sam@x.example")),
    )
    google.add(work.provider_id, PersonEvent("Review", instant(11), instant(12)))
    world.configure(family, skip_invited=True)

    world.sync_all(personal, family, work)

    # family's account sees the Offsite invitation itself; personal has the rule off.
    assert blocks(driver, family) == [busy(11, 12)]
    assert blocks(driver, personal) == [busy(9, 10), busy(11, 12)]


def test_working_hours_of_a_target_across_anext_dst_change(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    change = next_dst_change(instant(0, days=0).date())
    world.engine.settings = msgspec.structs.replace(world.settings, horizon_days=400)
    personal, family, work = mixed_user(world, driver, google)
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    hours = {"days": every_day, "start": "09:00", "end": "17:00"}
    world.configure(family, time_zone="Europe/Berlin", working_hours=hours)
    # A trip from the day before the change to the day after, and an evening out of hours.
    first = datetime.combine(change - timedelta(days=1), time(0), tzinfo=BERLIN)
    trip = google.add(work.provider_id, PersonEvent("Trip", first, first + timedelta(days=3)))
    evening = datetime.combine(change + timedelta(days=2), time(19), tzinfo=BERLIN)
    google.add(work.provider_id, PersonEvent("Dinner", evening, evening + timedelta(hours=2)))

    results = world.sync_all(personal, family, work)

    # 09:00-17:00 on the Berlin clock each day: an hour apart in UTC across the change.
    expected = [
        (
            "Busy",
            datetime.combine(change + timedelta(days=d), time(9), tzinfo=BERLIN).astimezone(UTC),
            datetime.combine(change + timedelta(days=d), time(17), tzinfo=BERLIN).astimezone(UTC),
        )
        for d in (-1, 0, 1)
    ]
    assert len({start.hour for _, start, _ in expected}) == 2
    assert blocks(driver, family) == expected
    # A calendar without working hours has them whole.
    assert [b[1:] for b in blocks(driver, personal)] == [
        (first.astimezone(UTC), (first + timedelta(days=3)).astimezone(UTC)),
        (evening.astimezone(UTC), (evening + timedelta(hours=2)).astimezone(UTC)),
    ]
    assert any("1 event outside working hours" in r.log.notes for r in results)
    # Settled: planning again writes nothing.
    assert world.sync(work, full=True).report.changes == 0

    # The trip is cut short to its first day: an incremental sync finds its later pieces.
    google.move(work.provider_id, trip, first, first + timedelta(days=1))
    assert world.sync(work).log.status == SyncStatus.SUCCESS
    assert blocks(driver, family) == expected[:1]


def test_merged_blocks_and_a_merge_split_when_the_middle_event_is_deleted(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    world.configure(family, merge_blocks=True)
    driver.add(personal.provider_id, PersonEvent("A", instant(9), instant(10)))
    middle = google.add(work.provider_id, PersonEvent("B", instant(9.5), instant(11)))
    driver.add(personal.provider_id, PersonEvent("C", instant(11), instant(12)))  # touches B
    driver.add(personal.provider_id, PersonEvent("D", instant(15), instant(16)))

    world.sync_all(personal, family, work)

    assert blocks(driver, family) == [busy(9, 12), busy(15, 16)]
    assert blocks(google, work) == [busy(9, 10), busy(11, 12), busy(15, 16)]  # no merging
    assert world.sync(personal, full=True).report.changes == 0

    google.delete(work.provider_id, middle)
    result = world.sync(work)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert blocks(driver, family) == [busy(9, 10), busy(11, 12), busy(15, 16)]
    assert blocks(driver, personal) == []
    # The split rewrote only the merged block: it became one of its parts in place and the
    # other part came (where its id was used before, Google's 409 is read and the block
    # written over); D untouched, and B's own block in personal went.
    assert result.report.blocks_deleted == 1
    assert result.report.blocks_created + result.report.blocks_updated == 2


def test_turning_merge_off_rewrites_the_merged_block_as_one_of_its_parts(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    """The fewest writes: the merged block becomes one of the blocks it splits into (one
    update), the others are created; nothing is deleted."""
    personal, family, work = mixed_user(world, driver, google)
    world.configure(family, merge_blocks=True)
    driver.add(personal.provider_id, PersonEvent("A", instant(9), instant(10)))
    google.add(work.provider_id, PersonEvent("B", instant(9.5), instant(11)))
    driver.add(personal.provider_id, PersonEvent("C", instant(11), instant(12)))  # touches B
    world.sync_all(personal, family, work)
    assert blocks(driver, family) == [busy(9, 12)]

    world.configure(family, merge_blocks=False)
    result = world.sync(family, full=True)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert blocks(driver, family) == [busy(9, 10), busy(9.5, 11), busy(11, 12)]
    report = result.report
    assert (report.blocks_deleted, report.blocks_updated, report.blocks_created) == (0, 1, 2)
    assert world.sync(family, full=True).report.changes == 0


def test_a_merged_block_is_rewritten_in_place_as_sources_sync_one_after_another(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    """Every calendar turned on together (their first syncs are one pass), then a source's
    event joining (and later leaving) a merged block rewrites that block in place, one write,
    same block id."""
    personal, family, work = mixed_user(world, driver, google)
    world.configure(family, merge_blocks=True)
    driver.add(personal.provider_id, PersonEvent("A", instant(9), instant(10)))

    def marked() -> list[tuple[object, object]]:
        return [(e["id"], e["mark"]) for e in driver.events(family.provider_id) if e["mark"]]

    def row_key() -> str:
        (row,) = [r for r in world.rows() if r.target_calendar_id == family.id]
        return row.source_key

    assert world.sync(personal).log.status == SyncStatus.SUCCESS
    ((block_id, first_mark),) = marked()
    assert blocks(driver, family) == [busy(9, 10)]
    joiner = google.add(work.provider_id, PersonEvent("B", instant(10), instant(11)))  # touches A

    joined = world.sync(work)  # B joins A's block in family; B's own block goes to personal

    assert joined.log.status == SyncStatus.SUCCESS, joined.log.error
    assert blocks(driver, family) == [busy(9, 11)]
    assert marked() == [(block_id, row_key())]  # the same block, marked with its new key
    assert row_key() != first_mark
    assert joined.report.blocks_updated == 1
    assert joined.report.blocks_deleted == 0
    assert joined.report.blocks_created == 1  # B's block in personal
    world.sync_all(personal, family, work)  # the echoes
    for cal in (personal, family, work):
        assert world.sync(cal, full=True).report.changes == 0
    assert marked() == [(block_id, row_key())]

    google.delete(work.provider_id, joiner)
    left = world.sync(work)  # B leaves: the block shrinks back in place

    assert left.log.status == SyncStatus.SUCCESS, left.log.error
    assert blocks(driver, family) == [busy(9, 10)]
    assert marked() == [(block_id, row_key())]
    assert left.report.blocks_updated == 1
    assert left.report.blocks_created == 0
    assert left.report.blocks_deleted == 1  # B's block in personal
    world.sync_all(personal, family, work)
    for cal in (personal, family, work):
        assert world.sync(cal, full=True).report.changes == 0
    assert blocks(driver, family) == [busy(9, 10)]
