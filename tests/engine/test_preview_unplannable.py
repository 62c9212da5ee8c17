"""The previews plan as the sync does when one calendar's data cannot be planned: the dry run
shows the writes the sync then makes (every other calendar's, the broken one's blocks left as
they are, a note naming it), and explain still answers for the healthy calendars' events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from calsync_server.db.models import Calendar, Event
from shared.clock import FixedClock
from tests.engine.test_switches import NOW, engine_at, event, iso, sync_all
from tests.support.explain import explained
from tests.support.world import Cal, World

LEFT_OUT = "the blocks of Team were left as they are"
TOMORROW = {"start": {"date": "2031-05-15"}, "end": {"date": "2031-05-16"}}
DAY = ("2031-05-15", "2031-05-16")

# (target, action, start, end): one write, as the dry run names it and as the provider shows it.
Write = tuple[int, str, str | None, str | None]


def _break(world: World, team: Cal, how: str) -> None:
    """Team's data made unplannable, as a bad write or a newer version might leave it."""
    if how == "times":  # its events' stored times cannot be read
        world.execute(
            sa.update(Event).where(Event.calendar_id == team.id).values(start=None, end=None)
        )
    else:  # a zone this machine does not know: the planner fails on its all-day event
        world.execute(
            sa.update(Calendar).where(Calendar.id == team.id).values(time_zone="Mars/Olympus")
        )


def _when(block: dict[str, Any], edge: str) -> str:
    shown = block[edge]
    return str(shown.get("dateTime") or shown["date"])


def _shown(world: World, *cals: Cal) -> dict[str, tuple[int, str, str]]:
    """calsync's blocks in the calendars, by id: where, and when."""
    return {
        b["id"]: (cal.id, _when(b, "start"), _when(b, "end"))
        for cal in cals
        for b in world.blocks(cal)
    }


def _written(
    before: dict[str, tuple[int, str, str]], after: dict[str, tuple[int, str, str]]
) -> set[Write]:
    """What a sync wrote, read from the provider: blocks new, moved and gone."""
    wrote: set[Write] = set()
    for bid, (cid, start, end) in after.items():
        if bid not in before:
            wrote.add((cid, "create", start, end))
        elif before[bid] != after[bid]:
            wrote.add((cid, "update", start, end))
    wrote |= {(cid, "delete", s, e) for bid, (cid, s, e) in before.items() if bid not in after}
    return wrote


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


@pytest.mark.parametrize("merge", [False, True], ids=["apart", "merging"])
@pytest.mark.parametrize("how", ["times", "zone"])
def test_the_dry_run_shows_the_writes_the_sync_makes_with_one_calendar_left_out(
    world: World, unique: str, how: str, merge: bool
) -> None:
    engine = engine_at(world, FixedClock(NOW))
    cals = world.account(f"work-{unique}@example.com", "Team")
    work, team = cals["primary"], cals["Team"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, team, include_all_day=True)
    world.configure(home, include_all_day=True, merge_blocks=merge)
    board = world.insert(work, **event("Board", timedelta(hours=1)))
    world.insert(team, **event("Offsite", timedelta(hours=4)))
    world.insert(team, summary="Team day", **TOMORROW)
    sync_all(engine, work, team, home)
    assert len(world.blocks(home)) == 3
    _break(world, team, how)
    # Late touches Team's Offsite (a target that merges would join them) and Board is gone.
    world.insert(work, **event("Late", timedelta(hours=3)))
    world.service(work.email).events().delete(
        calendarId=work.provider_id, eventId=board["id"]
    ).execute()
    before = _shown(world, work, team, home)

    shown = engine.dry_run(world.user(), [work.id], full=True)

    assert any(note.startswith(LEFT_OUT) for note in shown.notes), shown.notes
    planned: set[Write] = {
        (t.calendar_id, c.action, _iso(c.start_at), _iso(c.end_at))
        for t in shown.targets
        for c in t.changes
    }
    late = (iso(NOW + timedelta(hours=3)), iso(NOW + timedelta(hours=4)))
    gone = (iso(NOW + timedelta(hours=1)), iso(NOW + timedelta(hours=2)))
    # Late blocks Home and Team, Board's blocks go; Team's blocks are left as they are.
    assert planned == {
        (home.id, "create", *late),
        (team.id, "create", *late),
        (home.id, "delete", *gone),
        (team.id, "delete", *gone),
    }
    assert _shown(world, work, team, home) == before  # nothing written

    result = engine.sync_calendar(work.id, full=True)

    assert any(note.startswith(LEFT_OUT) for note in result.log.notes)
    after = _shown(world, work, team, home)
    assert _written(before, after) == planned
    # Team's Offsite and Team day blocks stand in Work and Home as they were.
    offsite = (iso(NOW + timedelta(hours=4)), iso(NOW + timedelta(hours=5)))
    teams = {bid: at for bid, at in before.items() if at[1:] in (offsite, DAY)}
    assert sorted(at[0] for at in teams.values()) == sorted([work.id, work.id, home.id, home.id])
    assert {bid: after.get(bid) for bid in teams} == teams
    counts = (result.log.blocks_created, result.log.blocks_updated, result.log.blocks_deleted)
    assert counts == (shown.creates, shown.updates, shown.deletes)


def test_explain_answers_for_a_healthy_calendar_while_another_cannot_be_planned(
    world: World, unique: str
) -> None:
    engine = engine_at(world, FixedClock(NOW))
    cals = world.account(f"work-{unique}@example.com", "Team")
    work, team = cals["primary"], cals["Team"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, team, home, include_all_day=True)
    world.insert(work, **event("Board", timedelta(hours=1)))
    world.insert(team, summary="Team day", **TOMORROW)
    sync_all(engine, work, team, home)
    user = world.user()
    _break(world, team, "zone")

    board, notes = explained(world, user, "Board", NOW)

    assert any(note.startswith(LEFT_OUT) for note in notes), notes
    assert board.verdict == "blocks"
    by_target = {t.calendar_id: t for t in board.targets}
    assert set(by_target) == {team.id, home.id}
    for target in by_target.values():
        assert target.verdict == "blocks"
        (block,) = target.blocks
        assert (block.outcome, block.written_by) == ("matches", "calsync")
    # Team's own event: it gives no block this time, and its block in Home is left standing.
    day, _ = explained(world, user, "Team day", NOW)
    assert day.verdict == "not_a_source"
    assert "could not be planned" in day.reason
    (in_home,) = [t for t in day.targets if t.calendar_id == home.id]
    (block,) = in_home.blocks
    assert block.outcome == "left"
