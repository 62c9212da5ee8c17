"""Switches and failures that reach past one calendar: a target that leaves, one calendar seen
through two accounts, one calendar failing among the others, retries and what the log counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from calsync_server.accounts.vault import StoredCredentials
from calsync_server.api import queries
from calsync_server.db.models import Calendar, Event, SyncLog
from calsync_server.providers.google.provider import GoogleProvider
from calsync_server.providers.model import Provider
from calsync_server.providers.retry import RetryPolicy
from calsync_server.sync.engine import SyncEngine, SyncResult
from shared.clock import FixedClock
from shared.domain import SyncStatus
from tests.support.shared_calendar import shared_team
from tests.support.world import FAST_RETRY, Cal, World

# The engine's clock stands still here; every event is placed relative to it, never to the
# wall clock, so nothing depends on the hour the test runs.
NOW = datetime(2031, 5, 14, 10, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event(summary: str, start: timedelta, length: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    """An event starting `start` after the engine's now (before it when negative)."""
    return {
        "summary": summary,
        "start": {"dateTime": iso(NOW + start)},
        "end": {"dateTime": iso(NOW + start + length)},
    }


def engine_at(world: World, clock: FixedClock, retry: RetryPolicy = FAST_RETRY) -> SyncEngine:
    return SyncEngine(world.db, world.settings, clock=clock, vault=world.vault, retry=retry)


def sync_all(engine: SyncEngine, *cals: Cal, full: bool = False) -> list[SyncResult]:
    """Each calendar, then each again (the second pass consumes the echoes); `full`: each a
    full sync of its own calendar (a FULL kind is the user's pass, which reads them all)."""
    return [engine.sync_calendar(c.id, full=full) for c in cals for _ in range(2)]


def summaries(world: World, cal: Cal) -> list[str]:
    return sorted(b["summary"] for b in world.blocks(cal))


def logs(world: World, cal: Cal) -> list[SyncLog]:
    with Session(world.db) as session:
        return list(
            session.exec(select(SyncLog).where(SyncLog.calendar_id == cal.id).order_by(SyncLog.id))
        )


# -- 1. a calendar that stops being a target ---------------------------------------------------


@pytest.mark.parametrize(
    ("change", "full"),
    [({"role": "source"}, True), ({"sync_enabled": False}, False)],
    ids=["made-source", "sync-off"],
)
def test_a_calendar_that_stops_being_a_target_loses_even_the_block_that_ended_an_hour_ago(
    world: World, unique: str, change: dict[str, Any], full: bool
) -> None:
    engine = engine_at(world, FixedClock(NOW))
    work, home = world.work_and_home(unique)
    world.configure(work, home, busy_title="title")
    world.insert(work, **event("Ended an hour ago", -timedelta(hours=2)))
    world.insert(work, **event("Later today", timedelta(hours=2)))
    sync_all(engine, work, home)
    assert summaries(world, home) == ["Busy - Ended an hour ago", "Busy - Later today"]

    # As the API does: the new setting, then a sync of the calendar (full for a new role).
    world.configure(home, **change)
    result = engine.sync_calendar(home.id, full=full)

    assert world.blocks(home) == []
    assert result.log.status == SyncStatus.SUCCESS
    assert result.log.blocks_deleted == 2
    assert [r for r in world.rows() if r.target_calendar_id == home.id] == []


def test_a_calendar_turned_off_keeps_its_blocks_when_the_user_chose_so(
    world: World, unique: str
) -> None:
    engine = engine_at(world, FixedClock(NOW))
    work, home = world.work_and_home(unique)
    world.configure(work, home)
    world.configure(home, keep_blocks_when_off=True)
    world.insert(work, **event("Ended", -timedelta(hours=2)))
    world.insert(work, **event("Later", timedelta(hours=2)))
    world.insert(home, **event("Dentist", timedelta(hours=4)))
    sync_all(engine, work, home)

    world.configure(home, sync_enabled=False)
    engine.sync_calendar(home.id)

    assert len(world.blocks(home)) == 2  # kept, as chosen
    assert world.blocks(work) == []  # what it sourced goes all the same


def test_a_target_that_stays_one_keeps_the_block_of_an_event_that_ended(
    world: World, unique: str
) -> None:
    clock = FixedClock(NOW)
    engine = engine_at(world, clock)
    work, home = world.work_and_home(unique)
    world.configure(work, home)
    made = world.insert(work, **event("Standup", timedelta(minutes=30)))
    sync_all(engine, work, home)
    clock.advance(timedelta(hours=2))  # the standup is over

    world.service(work.email).events().delete(
        calendarId=work.provider_id, eventId=made["id"]
    ).execute()
    sync_all(engine, work, home)

    assert len(world.blocks(home)) == 1  # history: its source changed, the target stays one


def test_a_disconnect_removes_past_blocks_from_the_leaving_calendars(
    world: World, unique: str
) -> None:
    engine = engine_at(world, FixedClock(NOW))
    work, home = world.work_and_home(unique)
    world.configure(work, home)
    world.insert(work, **event("Ended", -timedelta(hours=2)))
    world.insert(home, **event("Ended too", -timedelta(hours=3)))
    sync_all(engine, work, home)
    assert (len(world.blocks(home)), len(world.blocks(work))) == (1, 1)

    world.configure(home, sync_enabled=False)  # disconnect turns its calendars off first
    report = engine.release_account(_account_of(world, home))

    assert report.error is None
    assert world.blocks(home) == []  # the past block in the leaving calendar
    assert world.blocks(work) == []  # and the one it sourced


def _account_of(world: World, cal: Cal) -> int:
    with Session(world.db) as session:
        calendar = session.get(Calendar, cal.id)
        assert calendar is not None
        return calendar.account_id


# -- 4. one calendar through two accounts; one calendar failing among the others ---------------


def test_one_calendar_through_two_accounts_turned_on_in_both_fails_no_full_sync(
    world: World, unique: str
) -> None:
    engine = engine_at(world, FixedClock(NOW))
    work, team, home, team_again = shared_team(world, unique)
    world.insert(team, **event("Team offsite", timedelta(hours=1)))
    world.insert(work, **event("Board", timedelta(hours=3)))
    world.insert(home, **event("Dentist", timedelta(hours=5)))
    # Data a server may already hold from before the API refused a second copy: Team synced
    # through home's login first (its events stored), then turned on through work's too.
    world.configure(work, home, team_again, busy_title="title")
    sync_all(engine, team_again, work, home)
    world.configure(team, busy_title="title")

    results = sync_all(engine, work, team, home, team_again, full=True)

    by_calendar = {r.log.calendar_id: r.log for r in results}
    for cal in (work, team, home):
        assert by_calendar[cal.id].status == SyncStatus.SUCCESS, by_calendar[cal.id].error
    refused = by_calendar[team_again.id]
    assert refused.status == SyncStatus.ERROR
    assert f"work-{unique}@example.com" in (refused.error or "")
    assert '"Team"' in (refused.error or "")
    # Team counts once: one block of it in each other calendar, and its own blocks once.
    assert summaries(world, work) == ["Busy - Dentist", "Busy - Team offsite"]
    assert summaries(world, home) == ["Busy - Board", "Busy - Team offsite"]
    assert summaries(world, team) == ["Busy - Board", "Busy - Dentist"]


def test_a_calendar_the_provider_refuses_fails_no_other_calendars_full_sync(
    world: World, unique: str
) -> None:
    engine = engine_at(world, FixedClock(NOW))
    cals = world.account(f"work-{unique}@example.com", "Team")
    work, team = cals["primary"], cals["Team"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, team, home)
    sync_all(engine, work, team, home)
    world.insert(work, **event("Board", timedelta(hours=1)))
    world.insert(home, **event("Dentist", timedelta(hours=3)))
    # Team is gone for this login at the provider: every call about it answers 404.
    answer = world.admin.post(
        "/emulator/faults",
        json={"method": "*", "status": 404, "times": 1000, "calendar_id": team.provider_id},
    )
    assert answer.status_code == 201, answer.text

    results = sync_all(engine, work, team, home, full=True)

    by_calendar = {r.log.calendar_id: r.log for r in results}
    assert by_calendar[team.id].status == SyncStatus.ERROR
    for cal in (work, home):
        # Partial, not failed: only the blocks meant for Team could not be written.
        log = by_calendar[cal.id]
        assert (log.status, log.error) == (SyncStatus.PARTIAL, None)
        assert any(note.startswith("the blocks in Team could not be listed") for note in log.notes)
    assert [b["start"]["dateTime"] for b in world.blocks(home)] == [iso(NOW + timedelta(hours=1))]
    assert [b["start"]["dateTime"] for b in world.blocks(work)] == [iso(NOW + timedelta(hours=3))]


def test_one_calendars_unreadable_data_fails_no_other_calendars_sync(
    world: World, unique: str
) -> None:
    engine = engine_at(world, FixedClock(NOW))
    cals = world.account(f"work-{unique}@example.com", "Team", "Side")
    work, team, side = cals["primary"], cals["Team"], cals["Side"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, team, side, home)
    world.insert(team, **event("Offsite", timedelta(hours=1)))
    world.insert(side, **event("Side project", timedelta(hours=2)))
    sync_all(engine, work, team, side, home)
    # Two calendars' rows broken on purpose, as a bad write or a newer version might leave
    # them: Team's event without its times, Side's role a word this version does not know.
    world.execute(sa.update(Event).where(Event.calendar_id == team.id).values(start=None, end=None))
    world.execute(sa.update(Calendar).where(Calendar.id == side.id).values(role="owner"))
    world.insert(work, **event("Board", timedelta(hours=3)))
    world.insert(home, **event("Dentist", timedelta(hours=5)))

    results = sync_all(engine, work, home, full=True)

    assert {r.log.status for r in results} == {SyncStatus.PARTIAL}
    notes = {note for r in results for note in r.log.notes}
    assert any(note.startswith("the blocks of Team were left as they are") for note in notes)
    assert any(note.startswith("Side is left alone") for note in notes)
    # Board, and Team's and Side's blocks left standing; Dentist, and the same two.
    assert len(world.blocks(home)) == 3
    assert len(world.blocks(work)) == 3
    assert engine.sync_calendar(side.id).log.status == SyncStatus.ERROR


def test_one_calendars_unreadable_data_splits_no_merged_block_of_the_others(
    world: World, unique: str
) -> None:
    """Planned apart, each source's blocks merged alone: the healthy sources' touching blocks
    in a target that merges stay one block while Team's data cannot be read, and Team's block
    is left as it is."""
    engine = engine_at(world, FixedClock(NOW))
    cals = world.account(f"work-{unique}@example.com", "Team", "Side")
    work, team, side = cals["primary"], cals["Team"], cals["Side"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, team, side)
    world.configure(home, merge_blocks=True)
    world.insert(work, **event("Board", timedelta(hours=1)))
    world.insert(side, **event("Side project", timedelta(hours=2)))
    world.insert(team, **event("Offsite", timedelta(hours=5)))
    sync_all(engine, work, team, side, home)
    starts = [iso(NOW + timedelta(hours=1)), iso(NOW + timedelta(hours=5))]
    assert [b["start"]["dateTime"] for b in world.blocks(home)] == starts
    world.execute(sa.update(Event).where(Event.calendar_id == team.id).values(start=None, end=None))
    world.insert(work, **event("Late", timedelta(hours=3)))  # touches Side's: joins the merge

    result = engine.sync_calendar(work.id, full=True)

    assert result.log.status == SyncStatus.PARTIAL
    assert any(n.startswith("the blocks of Team were left as they are") for n in result.log.notes)
    shown = [(b["start"]["dateTime"], b["end"]["dateTime"]) for b in world.blocks(home)]
    assert shown == [
        (iso(NOW + timedelta(hours=1)), iso(NOW + timedelta(hours=4))),
        (iso(NOW + timedelta(hours=5)), iso(NOW + timedelta(hours=6))),
    ]


# -- 8. retries, counters, blocks already gone -------------------------------------------------


def test_a_timeout_a_dropped_connection_and_a_429_on_events_list_then_success(
    world: World, unique: str
) -> None:
    # The real provider, with a short timeout so that the emulator's delay is one.
    retry = RetryPolicy(attempts=6, base_seconds=0.01, max_seconds=5.0)
    # The waits the provider asks for, recorded instead of taken.
    waits: list[float] = []

    def provider(name: str, account_id: int | None, credentials: StoredCredentials) -> Provider:
        return GoogleProvider.from_stored(
            credentials,
            root_url=world.emulator.url,
            retry=retry,
            timeout=0.5,
            account_id=account_id,
            sleep=waits.append,
        )

    engine = SyncEngine(
        world.db,
        world.settings,
        clock=FixedClock(NOW),
        vault=world.vault,
        provider_factory=provider,
    )
    work, home = world.work_and_home(unique)
    world.configure(work, home)
    world.insert(work, **event("Board", timedelta(hours=1)))
    for fault in (
        {"status": 200, "delay_ms": 1500},  # answered after the client gave up: a timeout
        # httplib2 resends once on a dropped connection by itself: two drops reach calsync.
        {"status": 500, "drop_connection": True, "times": 2},
        {"status": 429, "reason": "rateLimitExceeded", "retry_after": 1},
    ):
        body = {"method": "events.list", "times": 1, "calendar_id": work.provider_id, **fault}
        world.admin.post("/emulator/faults", json=body).raise_for_status()

    result = engine.sync_calendar(work.id)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert result.log.retries == 3
    assert "retried after 429" in result.log.notes
    assert "retried after connection" in result.log.notes
    # One wait after each retry: the 429's 1 s Retry-After, the backoffs hundredths.
    assert len(waits) == 3
    assert max(waits) == 1.0, waits
    assert [b["start"]["dateTime"] for b in world.blocks(home)] == [iso(NOW + timedelta(hours=1))]


def test_the_sync_log_counts_events_and_the_api_counts_per_calendar(
    world: World, unique: str
) -> None:
    clock = FixedClock(NOW)
    engine = engine_at(world, clock)
    work, home = world.work_and_home(unique)
    world.configure(work, home)
    made = [world.insert(work, **event(f"Meeting {n}", timedelta(hours=n + 1))) for n in range(3)]

    first = engine.sync_calendar(work.id).log
    assert (first.events_fetched, first.events_created) == (3, 3)
    assert (first.events_updated, first.events_deleted) == (0, 0)
    assert first.blocks_created == 3
    engine.sync_calendar(home.id)  # home's first sync: its three blocks are echoes

    clock.advance(timedelta(minutes=5))
    service = world.service(work.email).events()
    service.patch(
        calendarId=work.provider_id, eventId=made[0]["id"], body={"summary": "Renamed"}
    ).execute()
    service.delete(calendarId=work.provider_id, eventId=made[1]["id"]).execute()
    world.insert(work, **event("Meeting 3", timedelta(hours=6)))
    log = engine.sync_calendar(work.id).log

    assert (log.events_fetched, log.events_created, log.events_updated, log.events_deleted) == (
        3,
        1,
        1,
        1,
    )
    assert (log.blocks_created, log.blocks_updated, log.blocks_deleted) == (1, 0, 1)
    assert log.finished_at == NOW + timedelta(minutes=5)

    with Session(world.db) as session:
        shown = {c.id: c for c in queries.calendars(session, world.user(), clock.now())}
    assert (shown[work.id].events, shown[work.id].busy_blocks) == (3, 0)
    assert (shown[home.id].events, shown[home.id].busy_blocks) == (0, 3)
    assert shown[work.id].last_sync_at == NOW + timedelta(minutes=5)
    assert shown[home.id].last_sync_at == NOW


def test_deleting_a_block_that_is_already_gone_counts_as_done(world: World, unique: str) -> None:
    engine = engine_at(world, FixedClock(NOW))
    work, home = world.work_and_home(unique)
    world.configure(work, home)
    made = [world.insert(work, **event(f"Meeting {n}", timedelta(hours=n + 1))) for n in range(2)]
    sync_all(engine, work, home)
    assert len(world.blocks(home)) == 2
    for status in (404, 410):
        world.admin.post(
            "/emulator/faults",
            json={
                "method": "events.delete",
                "status": status,
                "times": 1,
                "calendar_id": home.provider_id,
            },
        ).raise_for_status()

    service = world.service(work.email).events()
    for item in made:
        service.delete(calendarId=work.provider_id, eventId=item["id"]).execute()
    world.reset_stats()
    result = engine.sync_calendar(work.id)

    assert result.log.status == SyncStatus.SUCCESS, result.log.notes
    assert [r for r in world.rows() if r.target_calendar_id == home.id] == []
    assert world.stats()["calls"]["events.delete"] == 2  # answered 404 and 410: no retry
