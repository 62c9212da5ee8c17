"""The full reconcile's dry run once per provider (Google, Microsoft, Radicale): what a full pass
would change, its listing of every target's blocks included (a block whose event calsync no
longer knows is an orphan it would delete), shown with reasons while nothing is written to any
provider or the database; the full pass then does exactly that."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, delete, select

from calsync_server.db.models import BusyBlock, Event
from tests.engine import test_core_per_provider as core
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.connect import blocks, connect
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.per_provider import hands_fixture
from tests.support.rows import table_rows
from tests.support.world import Cal, World

DRIVERS = ["google", "microsoft", "caldav-radicale"]
GOOGLE_READS = {"events.list", "events.get", "calendarList.list", "calendarList.get"}


hands = hands_fixture(DRIVERS)


# The core suite's fixtures (SQLite, each driver cleaned up, the person's Google hands).
database_url, driver, google, instant = core.database_url, core.driver, core.google, core.instant
busy = core.busy


def _provider_side(driver: Driver, google: GoogleDriver, *cals: Cal) -> list[Any]:
    """Every event of every calendar as its provider holds it (ids, times, titles, marks)."""
    held = []
    for cal, hands in zip(cals, (driver, driver, google), strict=True):
        events = hands.events(cal.provider_id)
        held.append(sorted(repr(sorted(e.items())) for e in events))
    return held


def test_a_full_dry_run_lists_orphans_and_writes_nothing(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family = connect(world, driver, "Personal", "Family")
    (work,) = connect(world, google, "Work")
    world.configure(personal, family, work)
    dentist = driver.add(personal.provider_id, PersonEvent("Dentist", instant(14), instant(15)))
    google.add(work.provider_id, PersonEvent("Board meeting", instant(9), instant(10)))
    world.sync_all(personal, family, work)
    assert blocks(driver, family) == [busy(9, 10), busy(14, 15)]
    assert blocks(google, work) == [busy(14, 15)]

    # The dentist is cancelled, and calsync's rows of it are lost (a database restored from
    # before it was made): its blocks in Family and Work are orphans only a listing finds.
    driver.delete(personal.provider_id, dentist)
    with Session(world.db) as session:
        session.exec(delete(BusyBlock).where(col(BusyBlock.source_calendar_id) == personal.id))
        session.exec(
            delete(Event).where(
                col(Event.calendar_id) == personal.id, col(Event.summary) == "Dentist"
            )
        )
        session.commit()
        assert session.exec(select(Event).where(Event.summary == "Dentist")).first() is None
    # And a new event that a sync would block.
    driver.add(personal.provider_id, PersonEvent("Gym", instant(18), instant(19)))

    tables = table_rows(world.db)
    held = _provider_side(driver, google, personal, family, work)
    user = world.user("ada")
    world.reset_stats()

    usual = world.engine.dry_run(user)
    full = world.engine.dry_run(user, full=True)

    calls = world.stats()["calls"]
    assert set(calls) <= GOOGLE_READS, calls
    assert _provider_side(driver, google, personal, family, work) == held
    assert table_rows(world.db) == tables

    # The usual dry run cannot see the orphans; the full one lists and names them.
    assert (usual.creates, usual.deletes) == (2, 0)
    assert (full.creates, full.updates, full.deletes, full.held) == (2, 0, 2, 0)
    by_target = {t.calendar_id: t for t in full.targets}
    assert set(by_target) == {family.id, work.id}
    for cal in (family, work):
        changes = {(c.action, c.start_at, c.end_at) for c in by_target[cal.id].changes}
        assert changes == {
            ("create", instant(18), instant(19)),
            ("delete", instant(14), instant(15)),
        }
        (orphan,) = [c for c in by_target[cal.id].changes if c.action == "delete"]
        assert "orphan" in orphan.reason

    # The full pass does what its dry run said.
    world.sync(personal, full=True)
    assert blocks(driver, family) == [busy(9, 10), busy(18, 19)]
    assert blocks(google, work) == [busy(18, 19)]
