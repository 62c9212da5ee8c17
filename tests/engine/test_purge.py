"""Purge once per provider (Google, Microsoft, Radicale): calsync's blocks are found by their
mark at the provider, not by the block rows, and deleted; the person's own events (a look-alike
"Busy" included) and another user's blocks stay; a provider failing mid-way leaves a report of
what is left, and a second run finishes. Outcomes are read from the providers' calendars."""

from __future__ import annotations

from sqlmodel import Session, col, select

from calsync_server.db.models import BusyBlock, Calendar
from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.providers.model import ErrorKind
from calsync_server.sync.purge import PurgePlan, PurgeScope, find_blocks, purge_blocks
from shared.domain import CalendarRole
from tests.engine import test_core_per_provider as core
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.connect import blocks, connect, own_events
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.per_provider import hands_fixture
from tests.support.world import FAST_RETRY, Cal, World

DRIVERS = ["google", "microsoft", "caldav-radicale"]


hands = hands_fixture(DRIVERS)


# The core suite's fixtures (SQLite, each driver cleaned up, the person's Google hands).
database_url, driver, google, instant = core.database_url, core.driver, core.google, core.instant


def synced_user(world: World, driver: Driver, google: GoogleDriver) -> tuple[Cal, Cal, Cal]:
    """Ada: Personal and Family through the driver, Work in Google, each with events, synced,
    so that each calendar holds blocks of the other two."""
    personal, family = connect(world, driver, "Personal", "Family")
    (work,) = connect(world, google, "Work")
    world.configure(personal, family, work)
    driver.add(personal.provider_id, PersonEvent("Dentist", instant(14), instant(15)))
    driver.add(family.provider_id, PersonEvent("School run", instant(8), instant(8.5)))
    google.add(work.provider_id, PersonEvent("Board meeting", instant(9), instant(10)))
    world.sync_all(personal, family, work)
    assert len(blocks(driver, personal)) == 2
    return personal, family, work


def ada(world: World) -> PurgeScope:
    return PurgeScope(user_id=world.user("ada"))


def found_in(plan: PurgePlan) -> dict[int, int]:
    return {c.calendar_id: len(c.found) for c in plan.calendars if c.found}


def test_a_lost_database_still_gets_every_block_purged_and_nothing_else(
    world: World, driver: Driver, google: GoogleDriver, emulator: RunningEmulator, unique: str
) -> None:
    personal, family, work = synced_user(world, driver, google)
    # The person's own event that looks like a block: titled "Busy", without calsync's mark.
    driver.add(personal.provider_id, PersonEvent("Busy", instant(16), instant(17)))
    mine = {cal.id: own_events(h, cal) for cal, h in ((personal, driver), (family, driver))}
    mine[work.id] = own_events(google, work)
    # Bob, another user of this server, with blocks of his own in his own Google calendars.
    bob_hands = GoogleDriver(emulator, f"{unique}b")
    try:
        bob_a, bob_b = connect(world, bob_hands, "Bob A", "Bob B", user="bob")
        world.configure(bob_a, bob_b)
        bob_hands.add(bob_a.provider_id, PersonEvent("Gym", instant(7), instant(8)))
        world.sync_all(bob_a, bob_b)
        bobs = blocks(bob_hands, bob_b)
        assert len(bobs) == 1
        # The database lost every block row (the accounts are still there: signed in again).
        world.execute(BusyBlock.__table__.delete())  # type: ignore[attr-defined]

        plan = find_blocks(world.engine, ada(world))
        assert found_in(plan) == {personal.id: 2, family.id: 2, work.id: 2}
        assert all(c.error is None for c in plan.calendars)
        purge_blocks(world.engine, plan)

        for cal, h in ((personal, driver), (family, driver), (work, google)):
            assert blocks(h, cal) == [], cal
            assert own_events(h, cal) == mine[cal.id], cal
        assert [("Busy", instant(16), instant(17))] == [
            e for e in own_events(driver, personal) if e[0] == "Busy"
        ]
        assert sum(c.deleted for c in plan.calendars) == 6
        assert blocks(bob_hands, bob_b) == bobs  # another user's blocks are not touched
    finally:
        bob_hands.close()


def test_rows_go_with_the_blocks_and_sync_on_writes_them_again_unless_stopped(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = synced_user(world, driver, google)
    assert len(world.rows()) == 6

    plan = find_blocks(world.engine, ada(world))
    purge_blocks(world.engine, plan)
    assert world.rows() == []  # a later sync does not think they still exist
    assert {c.calendar_id for c in plan.receiving} == {personal.id, family.id, work.id}
    # Sync is still on: a full sync writes the blocks again (the report says it will).
    world.sync(personal, full=True)
    assert len(blocks(driver, personal)) == 2

    world.configure(family, role=CalendarRole.TARGET)
    plan = find_blocks(world.engine, ada(world))
    purge_blocks(world.engine, plan, stop_receiving=True)
    with Session(world.db) as session:
        shown = {
            c.id: (c.sync_enabled, str(c.role))
            for c in session.exec(
                select(Calendar).where(col(Calendar.id).in_([personal.id, family.id, work.id]))
            )
        }
    # A calendar that gives blocks too stays a source; Family was a target only: sync off.
    assert shown == {
        personal.id: (True, "source"),
        family.id: (False, "target"),
        work.id: (True, "source"),
    }
    for cal in (personal, family, work):
        world.sync(cal, full=True)
    assert blocks(driver, personal) == []
    assert blocks(driver, family) == []
    assert blocks(google, work) == []
    assert [e[0] for e in own_events(driver, personal)] == ["Dentist"]


def test_a_provider_failing_mid_way_reports_what_is_left_and_a_rerun_finishes(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = synced_user(world, driver, google)
    mine = own_events(driver, personal) + own_events(driver, family)
    plan = find_blocks(world.engine, ada(world))
    # The person deletes one block by hand in between (in the calendar done last): it is
    # already gone, not a failure.
    [by_hand] = [e["id"] for e in google.events(work.provider_id) if e["mark"] is not None][:1]
    google.delete(work.provider_id, str(by_hand))
    # The provider's next requests fail, retries included: the first calendar's two deletes
    # (one request each, or two parts of one batch each retried alone) fail for good.
    driver.fail_next(ErrorKind.TRANSIENT, times=2 * FAST_RETRY.attempts)
    purge_blocks(world.engine, plan)

    mine_left = {c.calendar_id: len(c.failed) for c in plan.calendars if c.failed}
    assert mine_left, [(c.name, c.deleted, c.already_gone) for c in plan.calendars]
    for c in plan.calendars:
        for failure in c.failed:
            assert failure.reason  # the provider's words
    left = len(blocks(driver, personal)) + len(blocks(driver, family)) + len(blocks(google, work))
    assert left == sum(mine_left.values())
    assert sum(c.deleted + c.already_gone + len(c.failed) for c in plan.calendars) == 6
    assert sum(c.already_gone for c in plan.calendars) == 1
    # The rows of the blocks still there stay; those of the blocks gone went.
    assert len(world.rows()) == left

    again = find_blocks(world.engine, ada(world))
    assert sum(len(c.found) for c in again.calendars) == left
    purge_blocks(world.engine, again)
    assert all(not c.failed for c in again.calendars)
    for cal, h in ((personal, driver), (family, driver), (work, google)):
        assert blocks(h, cal) == []
    assert own_events(driver, personal) + own_events(driver, family) == mine
    assert world.rows() == []
