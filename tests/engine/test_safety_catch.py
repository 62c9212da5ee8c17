"""The safety catch (issue 19 item 3) through the drivers: a source calendar that suddenly
answers (almost) empty does not empty the person's other calendars. Its blocks' deletes are
held, the calendar holds them as "needs you", the rest of the plan (a new event's blocks) goes
ahead, and the hold ends when the user confirms (the blocks go) or the source recovers (the
same events come back, nothing was lost, the hold lifts by itself)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlmodel import Session

from calsync_server.db.models import Calendar
from calsync_server.sync import holds
from shared.domain import SyncKind, SyncStatus
from tests.engine import test_core_per_provider as core
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.caldav import CalDAVDriver
from tests.support.drivers.connect import blocks
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.per_provider import driver_in, hands_fixture
from tests.support.world import Cal, World

busy, instant, mixed_user, google = core.busy, core.instant, core.mixed_user, core.google
EVENTS = 12  # over the line: at least 10, and more than half of a target's future blocks


hands = hands_fixture(["google", "microsoft", "caldav-radicale"])


@pytest.fixture
def driver(hands: Callable[[str], Driver], unique: str, world: World) -> Iterator[Driver]:
    yield from driver_in(world, hands(unique))


def _held(world: World, cal: Cal) -> dict[int, int]:
    with Session(world.db) as session:
        calendar = session.get(Calendar, cal.id)
        assert calendar is not None
        held = calendar.held_deletes or {}
        return {t["target_calendar_id"]: t["count"] for t in held.get("targets", [])}


def _a_full_day(driver: Driver, cal: Cal) -> tuple[list[str], list[tuple[str, object, object]]]:
    ids = [
        driver.add(cal.provider_id, PersonEvent(f"Event {n}", instant(n + 0.0), instant(n + 0.5)))
        for n in range(EVENTS)
    ]
    return ids, [busy(n, n + 0.5) for n in range(EVENTS)]


def test_an_emptied_source_holds_its_deletes_until_the_user_confirms(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    ids, day = _a_full_day(driver, personal)
    google.add(work.provider_id, PersonEvent("Standup", instant(20), instant(20.5)))
    world.sync_all(personal, family, work)
    assert blocks(google, work) == day

    for event_id in ids:  # the source suddenly has nothing, but for one new event
        driver.delete(personal.provider_id, event_id)
    driver.add(personal.provider_id, PersonEvent("New", instant(13), instant(14)))
    result = world.sync(personal)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    # Nothing of the day went; the new event's blocks were written all the same.
    assert blocks(google, work) == sorted([*day, busy(13, 14)])
    assert blocks(driver, family) == sorted([*day, busy(13, 14), busy(20, 20.5)])
    assert _held(world, personal) == {family.id: EVENTS, work.id: EVENTS}
    assert any("held 12 deletes in" in note for note in result.log.notes)
    # Later syncs, of it or of others, keep holding: the events are gone from calsync's copy,
    # yet their blocks stay until the user says.
    world.sync(personal)
    world.sync(work, full=True)
    world.sync(personal, full=True)
    assert blocks(google, work) == sorted([*day, busy(13, 14)])
    assert _held(world, personal) == {family.id: EVENTS, work.id: EVENTS}

    with Session(world.db) as session:
        calendar = session.get(Calendar, personal.id)
        assert calendar is not None
        assert holds.confirm(session, calendar) == 2 * EVENTS
        session.commit()
    result = world.sync(personal, full=True, kind=SyncKind.MANUAL)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert blocks(google, work) == [busy(13, 14)]
    assert blocks(driver, family) == [busy(13, 14), busy(20, 20.5)]
    assert _held(world, personal) == {}


def _restorer(driver: Driver, cal: Cal, ids: list[str]) -> Callable[[], None]:
    """Bring the same events back, as a provider that answered empty for a while would."""
    if isinstance(driver, GoogleDriver):

        def undelete() -> None:
            for event_id in ids:
                driver._events(cal.provider_id).patch(
                    calendarId=cal.provider_id, eventId=event_id, body={"status": "confirmed"}
                ).execute()

        return undelete
    assert isinstance(driver, CalDAVDriver)
    saved = [(event_id, driver.get_ics(cal.provider_id, event_id)[0]) for event_id in ids]

    def put_back() -> None:
        for name, text in saved:
            driver.put_ics(cal.provider_id, name, text)

    return put_back


def test_a_source_that_recovers_lifts_the_hold_by_itself_with_nothing_lost(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    if not isinstance(driver, GoogleDriver | CalDAVDriver):
        pytest.skip("Graph gives a restored event a new id: recovery is the same events again")
    personal, family, work = mixed_user(world, driver, google)
    ids, day = _a_full_day(driver, personal)
    world.sync_all(personal, family, work)
    restore = _restorer(driver, personal, ids)
    before = {(r.target_calendar_id, r.provider_event_id) for r in world.rows()}

    for event_id in ids:
        driver.delete(personal.provider_id, event_id)
    world.sync(personal)
    assert _held(world, personal) == {family.id: EVENTS, work.id: EVENTS}
    assert blocks(google, work) == day

    restore()
    result = world.sync(personal)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert _held(world, personal) == {}
    assert any("no delete is held any more" in note for note in result.log.notes)
    assert blocks(google, work) == day
    assert blocks(driver, family) == day
    # The very same blocks: none deleted and written again.
    assert {(r.target_calendar_id, r.provider_event_id) for r in world.rows()} == before
    assert result.report.blocks_deleted == 0
    assert result.report.blocks_created == 0


def test_a_few_deletes_are_never_held(world: World, driver: Driver, google: GoogleDriver) -> None:
    personal, family, work = mixed_user(world, driver, google)
    ids = [
        driver.add(personal.provider_id, PersonEvent(f"E{n}", instant(n), instant(n + 0.5)))
        for n in range(9)
    ]
    world.sync_all(personal, family, work)
    for event_id in ids:
        driver.delete(personal.provider_id, event_id)
    world.sync(personal)
    assert blocks(google, work) == []
    assert _held(world, personal) == {}
