"""A merged block while one of its members' accounts needs sign-in, once per driver and database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from calsync_server.db.models import Account, BusyBlock
from shared.domain import AccountState, SyncStatus
from tests.engine import test_core_per_provider as core
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.connect import blocks
from tests.support.drivers.google import GoogleDriver
from tests.support.world import World

# The core suite's driver fixtures (Google, Microsoft, Radicale, Xandikos); the database is the
# root conftest's, SQLite and PostgreSQL: the rows' member sources are a new column.
hands, driver, google = core.hands, core.driver, core.google
busy, instant, mixed_user = core.busy, core.instant, core.mixed_user


def test_a_merged_block_stays_whole_while_a_member_source_needs_sign_in(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    """Soak seed 7 day 64, the ordering ce4744b left open: Family merges; Personal's event got
    its block first, Work's event then joined it (the block moved in place: its row names
    Personal, its id is Personal's block's). Work's login is refused: the merged block still
    stands for Work's time, so it is neither deleted nor shrunk onto Personal's event. Then
    Personal's event moves away: its new block is written beside it under an id of its own
    (the usual one is the merged block's: a 409 or 412 would have written over it, and its row
    hit UNIQUE(target_calendar_id, provider_event_id))."""
    personal, family, work = mixed_user(world, driver, google)
    world.configure(family, merge_blocks=True)
    own = driver.add(personal.provider_id, PersonEvent("Dentist", instant(9), instant(10)))
    world.sync_all(personal, family, work)
    assert blocks(driver, family) == [busy(9, 10)]
    google.add(work.provider_id, PersonEvent("Board", instant(9.5), instant(11)))
    assert world.sync(work).log.status == SyncStatus.SUCCESS
    assert blocks(driver, family) == [busy(9, 11)]
    (merged,) = [r for r in world.rows() if r.target_calendar_id == family.id]
    assert merged.source_calendar_id == personal.id
    assert merged.member_sources == sorted([personal.id, work.id])

    google.refuse_login()
    assert world.sync(work).log.status == SyncStatus.ERROR
    with Session(world.db) as session:
        states = {a.email: a.state for a in session.exec(select(Account))}
    assert states[work.email] == AccountState.NEEDS_REAUTH
    kept = world.sync(personal, full=True)

    assert kept.log.status == SyncStatus.SUCCESS, kept.log.error
    assert blocks(driver, family) == [busy(9, 11)]
    assert kept.report.changes == 0

    driver.move(personal.provider_id, own, instant(13), instant(14))
    moved = world.sync(personal)

    assert moved.log.status == SyncStatus.SUCCESS, moved.log.error
    assert blocks(driver, family) == [busy(9, 11), busy(13, 14)]
    rows = [r for r in world.rows() if r.target_calendar_id == family.id]
    assert len({r.provider_event_id for r in rows}) == 2
    assert merged.provider_event_id in {r.provider_event_id for r in rows}
    # Settled: a full reconcile finds both blocks as their rows say, and writes nothing.
    again = world.sync(personal, full=True)
    assert again.log.status == SyncStatus.SUCCESS, again.log.error
    assert again.report.changes == 0
    assert blocks(driver, family) == [busy(9, 11), busy(13, 14)]


def test_a_merged_blocks_row_from_before_migration_0015_learns_its_members_without_a_write(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    personal, family, work = mixed_user(world, driver, google)
    world.configure(family, merge_blocks=True)
    driver.add(personal.provider_id, PersonEvent("Dentist", instant(9), instant(10)))
    google.add(work.provider_id, PersonEvent("Board", instant(9.5), instant(11)))
    world.sync_all(personal, family, work)
    world.execute(sa.update(BusyBlock).values(member_sources=None))

    result = world.sync(personal)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert result.report.changes == 0
    (merged,) = [r for r in world.rows() if r.target_calendar_id == family.id]
    assert merged.member_sources == sorted([personal.id, work.id])
    assert [r.member_sources for r in world.rows() if r.target_calendar_id != family.id] == [
        None,
        None,
    ]


def test_disconnecting_a_merged_blocks_later_member_removes_the_block(
    world: World, driver: Driver, google: GoogleDriver
) -> None:
    """A merged block stands for every member's source, not only its first member's (the
    source its row names): disconnecting the account of a later member takes the block away
    (it showed that account's time), and the staying member's event gets its own block at
    the next sync."""
    personal, family, work = mixed_user(world, driver, google)
    world.configure(family, merge_blocks=True)
    driver.add(personal.provider_id, PersonEvent("Dentist", instant(9), instant(10)))
    world.sync_all(personal, family, work)
    google.add(work.provider_id, PersonEvent("Board", instant(9.5), instant(11)))
    assert world.sync(work).log.status == SyncStatus.SUCCESS
    assert blocks(driver, family) == [busy(9, 11)]
    (merged,) = [r for r in world.rows() if r.target_calendar_id == family.id]
    assert merged.source_calendar_id == personal.id  # Work is its later member

    world.configure(work, sync_enabled=False)  # disconnect turns its calendars off first
    with Session(world.db) as session:
        (leaving,) = [a.id for a in session.exec(select(Account)) if a.email == work.email]
    assert leaving is not None
    report = world.engine.release_account(leaving)

    assert report.error is None
    assert blocks(driver, family) == []
    assert blocks(google, work) == []
    again = world.sync(personal, full=True)
    assert again.log.status == SyncStatus.SUCCESS, again.log.error
    assert blocks(driver, family) == [busy(9, 10)]
